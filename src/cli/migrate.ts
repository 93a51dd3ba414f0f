import { ConfigError } from '../config/app-config';
import { migrate } from '../database/migrator';
import { databaseConfigFrom, parseCommandArgs, wantsHelp } from './cli-support';

export const MIGRATE_USAGE = `usage: npm run cli -- migrate

Applies prisma/migrations to DATABASE_URL (each in one transaction, recorded in _prisma_migrations
as \`prisma migrate deploy\` records them). Reads only DATABASE_URL. Same as \`npm run db:migrate\`.`;

/** Applies the migrations, printing one line per migration applied and a summary. */
export async function applyMigrations(databaseUrl: string, print: (line: string) => void): Promise<void> {
  const result = await migrate(databaseUrl, { log: print });
  print(`migrations: ${result.applied.length} applied, ${result.alreadyApplied.length} already applied`);
}

/** `npm run cli -- migrate`: throws UsageError or ConfigError for the CLI to map to its exit codes. */
export async function runMigrateCommand(args: string[]): Promise<number> {
  if (wantsHelp(args)) {
    console.log(MIGRATE_USAGE);
    return 0;
  }
  parseCommandArgs({ args, options: {} });
  await applyMigrations(databaseConfigFrom(process.env).url, (line) => console.log(line));
  return 0;
}

/** `npm run db:migrate`: needs only DATABASE_URL; exit status 1 on any failure. */
async function main(): Promise<void> {
  const url = process.env.DATABASE_URL?.trim();
  if (!url) throw new ConfigError('DATABASE_URL', 'is required');
  await applyMigrations(url, (line) => console.log(line));
}

if (require.main === module) {
  main().catch((error: Error) => {
    console.error(error.message);
    process.exit(1);
  });
}
