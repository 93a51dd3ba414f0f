import { ConfigError } from '../config/app-config';
import { migrate } from '../database/migrator';

/** `npm run db:migrate`: applies prisma/migrations to DATABASE_URL. Needs only that variable. */
async function main(): Promise<void> {
  const url = process.env.DATABASE_URL?.trim();
  if (!url) throw new ConfigError('DATABASE_URL', 'is required');
  const result = await migrate(url, { log: (line) => console.log(line) });
  console.log(
    `migrations: ${result.applied.length} applied, ${result.alreadyApplied.length} already applied`,
  );
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exit(1);
});
