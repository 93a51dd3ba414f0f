import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import type { TestDatabase } from './backends';
import { databaseUrl, ENV } from './env';

/**
 * A new database with nothing in it (not cloned from the migrated template), for tests of the
 * migrator itself. Named like the run's other test databases, so the global teardown drops it
 * even when a test forgets to.
 */
export async function createEmptyDatabase(): Promise<TestDatabase> {
  const template = process.env[ENV.template];
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (!template || !adminUrl) throw new Error('backends not set up: run this test through jest (global setup)');
  const name = `${template.replace('_tpl_', '_t_')}_empty_${randomBytes(4).toString('hex')}`;
  await admin(adminUrl, `CREATE DATABASE ${name}`);
  return {
    url: databaseUrl(adminUrl, name),
    name,
    drop: () => admin(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

async function admin(url: string, sql: string): Promise<void> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
