import { createHash, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { FilesDatabase } from '../../src/database/files-database';
import { migrate, MIGRATIONS_DIR } from '../../src/database/migrator';
import type { TestDatabase } from '../support/backends';
import { createEmptyDatabase } from '../support/empty-database';

interface MigrationRow {
  id: string;
  checksum: string;
  finished_at: Date | null;
  migration_name: string;
  logs: string | null;
  rolled_back_at: Date | null;
  started_at: Date;
  applied_steps_count: number;
}

async function query<T extends object>(database: TestDatabase, text: string, params: unknown[] = []): Promise<T[]> {
  const client = new Client({ connectionString: database.url });
  await client.connect();
  try {
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end();
  }
}

const recorded = (database: TestDatabase) =>
  query<MigrationRow>(database, `SELECT * FROM "_prisma_migrations" ORDER BY migration_name`);

async function tableExists(database: TestDatabase, table: string): Promise<boolean> {
  const [row] = await query<{ found: string | null }>(database, `SELECT to_regclass($1)::text AS found`, [`public.${table}`]);
  return row.found !== null;
}

/** A migrations directory of our own: `{ name: sql }`. */
async function migrationsDir(migrations: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'files-api-migrations-'));
  for (const [name, sql] of Object.entries(migrations)) await writeMigration(dir, name, sql);
  return dir;
}

async function writeMigration(dir: string, name: string, sql: string): Promise<void> {
  await mkdir(path.join(dir, name), { recursive: true });
  await writeFile(path.join(dir, name, 'migration.sql'), sql);
}

describe(migrate.name, () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });
  const emptyDatabase = async () => {
    const database = await createEmptyDatabase();
    cleanups.push(() => database.drop());
    return database;
  };
  const tempMigrations = async (migrations: Record<string, string>) => {
    const dir = await migrationsDir(migrations);
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };

  describe('with the project migrations', () => {
    let names: string[];
    beforeAll(async () => {
      const entries = await readdir(MIGRATIONS_DIR, { withFileTypes: true });
      names = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
    });

    it('creates the schema on an empty database', async () => {
      const database = await emptyDatabase();
      expect(await migrate(database.url)).toEqual({ applied: names, alreadyApplied: [] });
      for (const table of ['files', 'owner_usage', '_prisma_migrations']) expect(await tableExists(database, table)).toBe(true);
      const labels = await query<{ label: string }>(
        database,
        `SELECT enumlabel AS label FROM pg_enum JOIN pg_type t ON t.oid = enumtypid WHERE t.typname = 'file_state' ORDER BY enumsortorder`,
      );
      expect(labels.map((l) => l.label)).toEqual(['pending', 'ready', 'deleting']);
      const indexes = await query<{ name: string }>(database, `SELECT indexname AS name FROM pg_indexes WHERE tablename = 'files' ORDER BY 1`);
      expect(indexes.map((i) => i.name)).toEqual([
        'files_owner_id_id_idx',
        'files_pkey',
        'files_state_expires_at_idx',
        'files_state_heartbeat_at_idx',
      ]);
    });

    it('leaves a schema the generated Prisma client reads and writes in full', async () => {
      const database = await emptyDatabase();
      await migrate(database.url);
      const db = new FilesDatabase({ url: database.url, poolMax: 2, connectTimeoutMs: 5_000, statementTimeoutMs: 15_000 });
      try {
        const data = {
          id: randomUUID(),
          ownerId: 'alice',
          state: 'ready' as const,
          purpose: 'batch',
          filename: 'a.jsonl',
          bytes: 2n ** 40n,
          sha256: 'ab'.repeat(32),
          createdAt: new Date(1_700_000_000_123),
          expiresAt: new Date(1_800_000_000_456),
          heartbeatAt: new Date(1_700_000_000_789),
        };
        await db.prisma.file.create({ data });
        expect(await db.prisma.file.findUniqueOrThrow({ where: { id: data.id } })).toEqual(data);
        await db.prisma.ownerUsage.create({ data: { ownerId: 'alice', usedBytes: 5n } });
        expect(await db.prisma.ownerUsage.findUniqueOrThrow({ where: { ownerId: 'alice' } })).toMatchObject({ usedBytes: 5n });
      } finally {
        await db.close();
      }
    });

    it('records each migration in _prisma_migrations exactly as prisma migrate deploy does', async () => {
      const database = await emptyDatabase();
      const before = new Date(Date.now() - 60_000);
      await migrate(database.url);
      const columns = await query<{ name: string; type: string; nullable: string; default: string | null }>(
        database,
        `SELECT column_name AS name, format_type(a.atttypid, a.atttypmod) AS type, is_nullable AS nullable, column_default AS default
         FROM information_schema.columns c
         JOIN pg_attribute a ON a.attrelid = '"_prisma_migrations"'::regclass AND a.attname = c.column_name
         WHERE c.table_name = '_prisma_migrations' ORDER BY c.ordinal_position`,
      );
      // Prisma's own definition (schema-engine, PostgreSQL flavour), column for column.
      expect(columns).toEqual([
        { name: 'id', type: 'character varying(36)', nullable: 'NO', default: null },
        { name: 'checksum', type: 'character varying(64)', nullable: 'NO', default: null },
        { name: 'finished_at', type: 'timestamp with time zone', nullable: 'YES', default: null },
        { name: 'migration_name', type: 'character varying(255)', nullable: 'NO', default: null },
        { name: 'logs', type: 'text', nullable: 'YES', default: null },
        { name: 'rolled_back_at', type: 'timestamp with time zone', nullable: 'YES', default: null },
        { name: 'started_at', type: 'timestamp with time zone', nullable: 'NO', default: 'now()' },
        { name: 'applied_steps_count', type: 'integer', nullable: 'NO', default: '0' },
      ]);
      const [pk] = await query<{ columns: string }>(
        database,
        `SELECT pg_get_constraintdef(oid) AS columns FROM pg_constraint WHERE conrelid = '"_prisma_migrations"'::regclass AND contype = 'p'`,
      );
      expect(pk.columns).toBe('PRIMARY KEY (id)');

      const rows = await recorded(database);
      expect(rows.map((r) => r.migration_name)).toEqual(names);
      for (const row of rows) {
        const sql = await readFile(path.join(MIGRATIONS_DIR, row.migration_name, 'migration.sql'));
        expect(row.checksum).toBe(createHash('sha256').update(sql).digest('hex'));
        expect(row.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        expect(row).toMatchObject({ logs: null, rolled_back_at: null, applied_steps_count: 1 });
        expect(row.finished_at).not.toBeNull();
        expect(row.started_at.getTime()).toBeGreaterThan(before.getTime());
        expect(row.finished_at!.getTime()).toBeGreaterThanOrEqual(row.started_at.getTime());
      }
    });

    it('does nothing when run again', async () => {
      const database = await emptyDatabase();
      await migrate(database.url);
      const first = await recorded(database);
      expect(await migrate(database.url)).toEqual({ applied: [], alreadyApplied: names });
      expect(await recorded(database)).toEqual(first);
    });

    it('applies each migration once when two runners start together', async () => {
      const database = await emptyDatabase();
      const results = await Promise.all([migrate(database.url), migrate(database.url)]);
      expect(results.flatMap((r) => r.applied).sort()).toEqual(names);
      expect((await recorded(database)).map((r) => r.migration_name)).toEqual(names);
    });
  });

  describe('with migrations of its own', () => {
    it('applies only what is new, in name order', async () => {
      const database = await emptyDatabase();
      const dir = await tempMigrations({ '0001_a': 'CREATE TABLE t_a (id int);' });
      await migrate(database.url, { dir });
      await writeMigration(dir, '0003_c', 'ALTER TABLE t_b ADD COLUMN c int;');
      await writeMigration(dir, '0002_b', 'CREATE TABLE t_b (id int);');
      expect(await migrate(database.url, { dir })).toEqual({ applied: ['0002_b', '0003_c'], alreadyApplied: ['0001_a'] });
    });

    it('leaves nothing applied or recorded of a migration that fails, and applies it once fixed', async () => {
      const database = await emptyDatabase();
      const dir = await tempMigrations({
        '0001_ok': 'CREATE TABLE t_ok (id int);',
        '0002_bad': 'CREATE TABLE t_bad (id int);\nINSERT INTO t_bad VALUES (1);\nSELEC broken;',
        '0003_after': 'CREATE TABLE t_after (id int);',
      });
      await expect(migrate(database.url, { dir })).rejects.toThrow(/migration 0002_bad failed/);
      expect((await recorded(database)).map((r) => r.migration_name)).toEqual(['0001_ok']);
      expect(await tableExists(database, 't_ok')).toBe(true);
      expect(await tableExists(database, 't_bad')).toBe(false);
      expect(await tableExists(database, 't_after')).toBe(false);

      await writeMigration(dir, '0002_bad', 'CREATE TABLE t_bad (id int);');
      expect(await migrate(database.url, { dir })).toEqual({ applied: ['0002_bad', '0003_after'], alreadyApplied: ['0001_ok'] });
    });

    it('rolls a migration back when its record cannot be written', async () => {
      const database = await emptyDatabase();
      // The SQL itself succeeds, but makes the INSERT of its own record fail: applied and
      // recorded must stand or fall together.
      const dir = await tempMigrations({
        '0001_sabotage': `CREATE TABLE t_sabotage (id int);
          ALTER TABLE "_prisma_migrations" ADD CONSTRAINT refuse_records CHECK (migration_name <> '0001_sabotage');`,
      });
      await expect(migrate(database.url, { dir })).rejects.toThrow(/0001_sabotage/);
      expect(await tableExists(database, 't_sabotage')).toBe(false);
      expect(await recorded(database)).toEqual([]);
    });

    it('records nothing when the very first migration fails', async () => {
      const database = await emptyDatabase();
      const dir = await tempMigrations({ '0001_bad': 'CREATE TABLE t_first (id int); CREATE TABLE t_first (id int);' });
      await expect(migrate(database.url, { dir })).rejects.toThrow(/0001_bad/);
      expect(await recorded(database)).toEqual([]);
      expect(await tableExists(database, 't_first')).toBe(false);
    });

    it('refuses to run while a migration is recorded as started but not finished', async () => {
      const database = await emptyDatabase();
      const dir = await tempMigrations({ '0001_a': 'CREATE TABLE t_a (id int);' });
      await migrate(database.url, { dir });
      // What `prisma migrate deploy` leaves after a failure: a row without finished_at.
      await query(database, `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, logs) VALUES ($1, $2, '0002_b', 'boom')`, [
        randomUUID(),
        '0'.repeat(64),
      ]);
      await writeMigration(dir, '0002_b', 'CREATE TABLE t_b (id int);');
      await writeMigration(dir, '0003_c', 'CREATE TABLE t_c (id int);');
      await expect(migrate(database.url, { dir })).rejects.toThrow(/0002_b is recorded as started but not finished/);
      expect(await tableExists(database, 't_b')).toBe(false);
      expect(await tableExists(database, 't_c')).toBe(false);

      // Once resolved as rolled back (prisma migrate resolve --rolled-back), it is applied anew.
      await query(database, `UPDATE "_prisma_migrations" SET rolled_back_at = now() WHERE migration_name = '0002_b'`);
      expect(await migrate(database.url, { dir })).toEqual({ applied: ['0002_b', '0003_c'], alreadyApplied: ['0001_a'] });
      const rows = (await recorded(database)).filter((r) => r.migration_name === '0002_b');
      expect(rows.map((r) => r.finished_at === null)).toEqual(expect.arrayContaining([true, false]));
    });

    it('warns about, but does not re-apply, a migration edited after it was applied', async () => {
      const database = await emptyDatabase();
      const dir = await tempMigrations({ '0001_a': 'CREATE TABLE t_a (id int);' });
      await migrate(database.url, { dir });
      await writeMigration(dir, '0001_a', 'CREATE TABLE t_a (id int); -- edited');
      const log: string[] = [];
      expect(await migrate(database.url, { dir, log: (line) => log.push(line) })).toEqual({ applied: [], alreadyApplied: ['0001_a'] });
      expect(log.join('\n')).toMatch(/0001_a was modified after it was applied/);
    });
  });
});
