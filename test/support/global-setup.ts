import { Client } from 'pg';
import { migrate } from '../../src/database/migrator';
import { databaseUrl, ENV } from './env';

/**
 * Resolves the real backends the http/integration/e2e tiers need, once per Jest run:
 * 1. TEST_DATABASE_URL (a PostgreSQL admin URL) and TEST_S3_* from the environment (`.ci/run` sets them);
 * 2. otherwise testcontainers, when a container runtime answers;
 * 3. otherwise the run fails, saying what to provide.
 * Then migrates a template database that every test file clones (fast, isolated databases).
 */
export default async function globalSetup(): Promise<void> {
  if (process.env[ENV.template]) return; // another project of this run already did it

  const needed: string[] = [];
  if (!process.env.TEST_DATABASE_URL) needed.push('TEST_DATABASE_URL');
  if (!process.env.TEST_S3_ENDPOINT) needed.push('TEST_S3_ENDPOINT');
  if (needed.length > 0) await startContainers(needed);

  const template = `files_api_tpl_${process.pid}`;
  const admin = new Client({ connectionString: process.env.TEST_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${template}`);
  } finally {
    await admin.end();
  }
  await migrate(databaseUrl(process.env.TEST_DATABASE_URL!, template));
  process.env[ENV.template] = template;
}

async function startContainers(needed: string[]): Promise<void> {
  const { getContainerRuntimeClient } = await import('testcontainers');
  const runtime = await getContainerRuntimeClient().catch(() => null);
  if (!runtime) {
    throw new Error(
      `These tests need a real PostgreSQL and a real S3 server, and none was given: ${needed.join(', ')} ` +
        'not set and no container runtime answers for testcontainers.\n' +
        'Either run `bash .ci/run` (installs and starts PostgreSQL and an S3 server, then runs the tests), or set\n' +
        '  TEST_DATABASE_URL=postgres://user@host:5432/db   (a role that may CREATE DATABASE)\n' +
        '  TEST_S3_ENDPOINT=http://host:port TEST_S3_ACCESS_KEY_ID=… TEST_S3_SECRET_ACCESS_KEY=… [TEST_S3_REGION=us-east-1]\n' +
        'or start Docker so testcontainers can provide PostgreSQL and MinIO. (`npm run test:unit` needs none of these.)',
    );
  }
  const started: { stop(): Promise<unknown> }[] = [];
  if (needed.includes('TEST_DATABASE_URL')) {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const pg = await new PostgreSqlContainer('postgres:16-alpine').start();
    started.push(pg);
    process.env.TEST_DATABASE_URL = pg.getConnectionUri();
  }
  if (needed.includes('TEST_S3_ENDPOINT')) {
    const { MinioContainer } = await import('@testcontainers/minio');
    const minio = await new MinioContainer('minio/minio:RELEASE.2025-04-22T22-12-26Z').start();
    started.push(minio);
    process.env.TEST_S3_ENDPOINT = minio.getConnectionUrl();
    process.env.TEST_S3_ACCESS_KEY_ID = minio.getUsername();
    process.env.TEST_S3_SECRET_ACCESS_KEY = minio.getPassword();
  }
  (globalThis as Record<string, unknown>)[ENV.containers] = started;
}
