import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { ApiKeysDatabase } from '../../src/api-keys/api-keys.database';
import { ApiKeysRepository } from '../../src/api-keys/api-keys.repository';
import { ApiKeysService } from '../../src/api-keys/api-keys.service';
import { SystemClock } from '../../src/common/clock';
import { createTestDatabase, type TestDatabase } from '../support/backends';
import { createEmptyDatabase } from '../support/empty-database';
import { freePort } from '../support/fault-proxy';
import { runCli, startServiceProcess } from '../support/service-process';

const KEY = /sk-files-[A-Za-z0-9_-]{43}/g;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const sha256 = (value: string) => createHash('sha256').update(value).digest();

/**
 * The built CLI (`dist/cli/index.js`, what `npm run cli` runs; `npm run build` first) as a child
 * process against a real PostgreSQL database, with only DATABASE_URL in its environment.
 */
describe('npm run cli (dist/cli/index.js)', () => {
  let database: TestDatabase;
  let sql: Client;
  let db: ApiKeysDatabase;
  let service: ApiKeysService;
  beforeAll(async () => {
    database = await createTestDatabase();
    sql = new Client({ connectionString: database.url });
    await sql.connect();
    db = new ApiKeysDatabase({ url: database.url, poolMax: 1, connectTimeoutMs: 5_000, statementTimeoutMs: 15_000 });
    service = new ApiKeysService(new ApiKeysRepository(db), new SystemClock());
  });
  afterAll(async () => {
    await sql?.end();
    await db?.close();
    await database?.drop();
  });
  beforeEach(() => sql.query('DELETE FROM api_keys'));

  const cli = (...args: string[]) => runCli(args, { DATABASE_URL: database.url });
  const rows = async () => (await sql.query(`SELECT id::text, owner_id, name, key_hash, key_prefix, revoked_at FROM api_keys ORDER BY created_at`)).rows;

  /**
   * A key made in-process (the CLI's own `create` is tested on its own below), in the shape
   * `keys create --json` prints, so list and revoke tests spawn fewer processes.
   */
  async function create(owner: string, name = '') {
    const { key, record } = await service.create(owner, name);
    return {
      id: record.id,
      owner,
      name,
      prefix: record.prefix,
      key,
      created_at: record.createdAt.toISOString(),
      last_used_at: null,
      revoked_at: null,
    };
  }

  describe('keys create', () => {
    it('prints the key exactly once, with id, owner, name, prefix and a warning; stores only its SHA-256', async () => {
      const run = await cli('keys', 'create', '--owner', 'alice', '--name', 'ci-bot');
      expect(run.code).toBe(0);
      const printed: string[] = run.stdout.match(KEY) ?? [];
      expect(printed).toHaveLength(1);
      const key = printed[0]!;
      expect(run.stdout).toMatch(/cannot be shown again/);
      const [row] = await rows();
      expect(run.stdout).toContain(row.id);
      expect(run.stdout).toMatch(/owner: +alice/);
      expect(run.stdout).toMatch(/name: +ci-bot/);
      expect(run.stdout).toContain(row.key_prefix);
      expect(row).toMatchObject({ owner_id: 'alice', name: 'ci-bot', revoked_at: null });
      expect(row.key_hash).toEqual(sha256(key));
      expect(key.startsWith(row.key_prefix)).toBe(true);
      expect(row.key_prefix).toMatch(/^sk-files-.{6}$/);
      // Nowhere in the database in clear.
      const dump = JSON.stringify((await sql.query(`SELECT * FROM api_keys`)).rows);
      expect(dump).not.toContain(key.slice(row.key_prefix.length));
    });

    it('with --json prints only one JSON object on stdout, the note on stderr', async () => {
      const run = await cli('keys', 'create', '--owner', 'bob', '--json');
      expect(run.code).toBe(0);
      const created = JSON.parse(run.stdout);
      expect(created).toEqual({
        id: expect.stringMatching(UUID),
        owner: 'bob',
        name: '',
        prefix: expect.stringMatching(/^sk-files-/),
        key: expect.stringMatching(/^sk-files-[A-Za-z0-9_-]{43}$/),
        created_at: expect.any(String),
        last_used_at: null,
        revoked_at: null,
      });
      expect(run.stderr).toMatch(/cannot be shown again/);
      expect(run.stderr).not.toContain(created.key);
      const [row] = await rows();
      expect(row.key_hash).toEqual(sha256(created.key));
    });

    it.each([
      ['no --owner', ['keys', 'create'], /--owner/],
      ['--owner without a value', ['keys', 'create', '--owner'], /--owner/],
      ['an invalid owner', ['keys', 'create', '--owner', 'alice smith'], /owner/],
      ['a 129-character owner', ['keys', 'create', '--owner', 'a'.repeat(129)], /owner/],
      ['a name over 200 characters', ['keys', 'create', '--owner', 'alice', '--name', 'n'.repeat(201)], /name/],
      ['an unknown option', ['keys', 'create', '--owner', 'alice', '--admin'], /--admin/],
      ['a stray argument', ['keys', 'create', 'alice'], /alice/],
    ])('exits 64 on %s, with one line on stderr and nothing created', async (_case, args, message) => {
      const run = await cli(...args);
      expect(run.code).toBe(64);
      expect(run.stdout).toBe('');
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(run.stderr).toMatch(message);
      expect(await rows()).toEqual([]);
    });
  });

  describe('keys list', () => {
    it('lists id, owner, name, prefix, dates; never a key or a digest; revoked ones only with --all', async () => {
      const a = await create('alice', 'laptop');
      const b = await create('bob');
      const revoked = await create('alice', 'old');
      expect((await cli('keys', 'revoke', revoked.id)).code).toBe(0);
      const digests = (await rows()).flatMap((r) => [r.key_hash.toString('hex'), r.key_hash.toString('base64')]);
      const secrets = [a.key, b.key, revoked.key, ...digests];

      const human = await cli('keys', 'list');
      expect(human.code).toBe(0);
      expect(human.stdout.split('\n')[0]).toMatch(/ID +OWNER +NAME +PREFIX +CREATED +LAST USED +REVOKED/);
      expect(human.stdout).toContain(a.id);
      expect(human.stdout).toContain(a.prefix);
      expect(human.stdout).toContain('laptop');
      expect(human.stdout).toContain(b.id);
      expect(human.stdout).not.toContain(revoked.id);

      const json = await cli('keys', 'list', '--all', '--json');
      expect(json.code).toBe(0);
      const listed = JSON.parse(json.stdout);
      expect(listed.map((k: { id: string }) => k.id)).toEqual([a.id, b.id, revoked.id]);
      expect(listed[2]).toEqual({ ...withoutKey(revoked), revoked_at: expect.any(String) });
      expect(listed[0]).toEqual(withoutKey(a));

      const alice = JSON.parse((await cli('keys', 'list', '--owner', 'alice', '--json')).stdout);
      expect(alice.map((k: { id: string }) => k.id)).toEqual([a.id]);

      for (const output of [human.stdout, human.stderr, json.stdout, json.stderr]) {
        expect(output.match(KEY)).toBeNull();
        for (const secret of secrets) expect(output).not.toContain(secret);
      }
    });

    it('says so when there are none, and prints [] with --json', async () => {
      expect((await cli('keys', 'list')).stdout).toMatch(/no API keys/);
      expect(JSON.parse((await cli('keys', 'list', '--json')).stdout)).toEqual([]);
    });
  });

  describe('keys revoke', () => {
    it('revokes by id (then the key is gone from the default listing); a second time says already revoked', async () => {
      const created = await create('alice');
      const run = await cli('keys', 'revoke', created.id);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`revoked API key ${created.id}`));
      expect((await rows())[0].revoked_at).toBeInstanceOf(Date);
      expect(JSON.parse((await cli('keys', 'list', '--json')).stdout)).toEqual([]);

      const again = await cli('keys', 'revoke', created.id, '--json');
      expect(again.code).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ id: created.id, already_revoked: true, revoked_at: expect.any(String) });
    });

    it('exits 1 with a clear message for an unknown id', async () => {
      const run = await cli('keys', 'revoke', '8d0f7a52-5a55-4b43-9e54-6f6a0c8b3f11');
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr.trim()).toBe('no API key with id 8d0f7a52-5a55-4b43-9e54-6f6a0c8b3f11');
    });

    it.each([
      ['no id', ['keys', 'revoke']],
      ['two ids', ['keys', 'revoke', '8d0f7a52-5a55-4b43-9e54-6f6a0c8b3f11', '8d0f7a52-5a55-4b43-9e54-6f6a0c8b3f12']],
      ['an id that is not a UUID', ['keys', 'revoke', 'sk-files-abc']],
    ])('exits 64 on %s', async (_case, args) => {
      const run = await cli(...args);
      expect(run.code).toBe(64);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
    });
  });

  describe('usage and configuration', () => {
    it.each([
      ['no command', []],
      ['an unknown command', ['frobnicate']],
      ['keys without a subcommand', ['keys']],
      ['an unknown keys subcommand', ['keys', 'delete']],
    ])('exits 64 on %s, with one line on stderr', async (_case, args) => {
      const run = await cli(...args);
      expect(run.code).toBe(64);
      expect(run.stdout).toBe('');
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
    });

    it.each([[['--help']], [['keys', '--help']], [['keys', 'create', '--help']], [['migrate', '--help']], [['audit', '--help']]])(
      '%p prints usage and exits 0',
      async (args) => {
        const run = await cli(...args);
        expect(run.code).toBe(0);
        expect(run.stdout).toMatch(/usage: npm run/);
      },
    );

    it.each([
      ['unset', undefined],
      ['not a postgres URL', 'mysql://root:hunter2@db/files'],
    ])('exits 78 naming DATABASE_URL when it is %s, and needs no API_KEYS', async (_case, url) => {
      for (const args of [['keys', 'list'], ['keys', 'create', '--owner', 'alice'], ['migrate']]) {
        const run = await runCli(args, url === undefined ? {} : { DATABASE_URL: url });
        expect(run.code).toBe(78);
        expect(run.stderr).toMatch(/DATABASE_URL/);
        expect(run.stderr).not.toContain('hunter2');
        expect(run.stdout).toBe('');
      }
    });

    it('exits 1 saying the database is unavailable when nothing answers', async () => {
      const url = new URL(database.url);
      url.port = String(await freePort());
      const run = await runCli(['keys', 'list'], { DATABASE_URL: url.toString() });
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/database unavailable/);
      expect(run.stdout).toBe('');
    });
  });

  describe('migrate', () => {
    it('applies every migration to an empty database, then none', async () => {
      const empty = await createEmptyDatabase();
      try {
        const first = await runCli(['migrate'], { DATABASE_URL: empty.url });
        expect(first.code).toBe(0);
        expect(first.stdout).toMatch(/applied 20261126100000_api_keys/);
        const again = await runCli(['migrate'], { DATABASE_URL: empty.url });
        expect(again.code).toBe(0);
        expect(again.stdout).toMatch(/0 applied, \d+ already applied/);
      } finally {
        await empty.drop();
      }
    });
  });

  describe('audit', () => {
    it('runs the audit (0 and only JSON on stdout when consistent); 64 on a bad option; 78 on bad configuration', async () => {
      const fsDir = await mkdtemp(path.join(tmpdir(), 'files-api-cli-audit-'));
      try {
        const env = { DATABASE_URL: database.url, STORAGE_DRIVER: 'fs', FS_STORAGE_DIR: fsDir };
        const ok = await runCli(['audit', '--json'], env);
        expect(ok.code).toBe(0);
        expect(JSON.parse(ok.stdout).before).toMatchObject({ ran: true, orphanObjects: 0, usageDrift: [] });

        const typo = await runCli(['audit', '--repiar'], env);
        expect(typo.code).toBe(64);
        expect(typo.stderr.trim()).toMatch(/^unknown option --repiar/);

        const bogus = await runCli(['audit'], { ...env, STORAGE_DRIVER: 'bogus' });
        expect(bogus.code).toBe(78);
        expect(bogus.stderr).toMatch(/STORAGE_DRIVER/);
      } finally {
        await rm(fsDir, { recursive: true, force: true });
      }
    });
  });

  it('creates a key the built service accepts with API_KEYS empty, and refuses once revoked', async () => {
    const fsDir = await mkdtemp(path.join(tmpdir(), 'files-api-keys-cli-'));
    const service = await startServiceProcess({
      DATABASE_URL: database.url,
      STORAGE_DRIVER: 'fs',
      FS_STORAGE_DIR: fsDir,
      API_KEY_CACHE_SECONDS: '0',
      LOG_FORMAT: 'text',
    });
    try {
      expect(service.output()).toMatch(/API_KEYS is empty: only managed API keys authenticate/);
      const created = await create('dora');
      const list = () => fetch(`${service.origin}/v1/files`, { headers: { Authorization: `Bearer ${created.key}` } });
      const ok = await list();
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ object: 'list', data: [] });
      expect((await cli('keys', 'revoke', created.id)).code).toBe(0);
      const refused = await list();
      expect(refused.status).toBe(401);
      expect(await refused.json()).toMatchObject({ error: { code: 'invalid_api_key' } });
    } finally {
      await service.kill('SIGTERM');
      await rm(fsDir, { recursive: true, force: true });
    }
  });
});

function withoutKey<T extends { key: string }>(created: T): Omit<T, 'key'> {
  const { key: _key, ...rest } = created;
  return rest;
}
