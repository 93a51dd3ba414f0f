import { Client } from 'pg';
import { ENV } from './env';

/** Drops the template and any test database this run left behind, and stops containers. */
export default async function globalTeardown(): Promise<void> {
  const template = process.env[ENV.template];
  if (!template) return;
  delete process.env[ENV.template];
  const admin = new Client({ connectionString: process.env.TEST_DATABASE_URL });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ datname: string }>(
      `SELECT datname FROM pg_database WHERE datname = $1 OR datname LIKE $2`,
      [template, `${template.replace('_tpl_', '_t_')}_%`],
    );
    for (const { datname } of rows) await admin.query(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
  const containers = (globalThis as Record<string, unknown>)[ENV.containers] as { stop(): Promise<unknown> }[] | undefined;
  for (const container of containers ?? []) await container.stop();
}
