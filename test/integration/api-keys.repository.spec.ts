import { createHash, randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { generateApiKey } from '../../src/api-keys/api-key';
import { ApiKeysDatabase } from '../../src/api-keys/api-keys.database';
import { ApiKeysRepository, type CreateApiKey } from '../../src/api-keys/api-keys.repository';
import { ApiKeysService } from '../../src/api-keys/api-keys.service';
import { ManagedApiKeyResolver } from '../../src/api-keys/managed-api-key.resolver';
import { SystemClock } from '../../src/common/clock';
import { DatabaseUnavailableError } from '../../src/files/files.errors';
import { createTestDatabase, type TestDatabase } from '../support/backends';
import { freePort } from '../support/fault-proxy';

const T0 = new Date('2026-11-26T10:00:00.000Z');
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);
const bearer = (key: string) => ({ headers: { authorization: `Bearer ${key}` } }) as never;

/** ApiKeysRepository against a real, migrated PostgreSQL database (constraints included). */
describe(ApiKeysRepository.name, () => {
  let database: TestDatabase;
  let db: ApiKeysDatabase;
  let repository: ApiKeysRepository;
  let sql: Client;
  beforeAll(async () => {
    database = await createTestDatabase();
    db = new ApiKeysDatabase({ url: database.url, poolMax: 2, connectTimeoutMs: 5_000, statementTimeoutMs: 15_000 });
    repository = new ApiKeysRepository(db);
    sql = new Client({ connectionString: database.url });
    await sql.connect();
  });
  afterAll(async () => {
    await sql?.end();
    await db?.close();
    await database?.drop();
  });
  beforeEach(() => sql.query('DELETE FROM api_keys'));

  const input = (overrides: Partial<CreateApiKey> = {}): CreateApiKey => {
    const { hash, prefix } = generateApiKey();
    return { ownerId: 'alice', name: '', keyHash: hash, keyPrefix: prefix, createdAt: T0, ...overrides };
  };

  describe('create and findActiveByHash', () => {
    it('stores a key and finds it by its digest', async () => {
      const data = input({ name: 'ci-bot' });
      const created = await repository.create(data);
      expect(created).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        ownerId: 'alice',
        name: 'ci-bot',
        prefix: data.keyPrefix,
        createdAt: T0,
        lastUsedAt: null,
        revokedAt: null,
      });
      const found = await repository.findActiveByHash(data.keyHash);
      expect(found).toEqual({ id: created.id, ownerId: 'alice', keyHash: data.keyHash, lastUsedAt: null });
      expect(found!.keyHash).toBeInstanceOf(Buffer);
    });

    it('finds nothing for an unknown digest', async () => {
      await repository.create(input());
      expect(await repository.findActiveByHash(createHash('sha256').update('nope').digest())).toBeNull();
    });

    it('stores the digest as 32 bytes and nothing resembling the key', async () => {
      const { key, hash, prefix } = generateApiKey();
      await repository.create(input({ keyHash: hash, keyPrefix: prefix }));
      const { rows } = await sql.query(`SELECT * FROM api_keys`);
      expect(rows).toHaveLength(1);
      expect(rows[0].key_hash).toEqual(hash);
      expect(JSON.stringify(rows)).not.toContain(key.slice(prefix.length));
    });
  });

  describe('constraints', () => {
    /** The error a refused write raises: a constraint violation, not an outage. */
    async function refused(data: CreateApiKey, constraint: RegExp): Promise<void> {
      const error = await repository.create(data).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(Error);
      expect(error).not.toBeInstanceOf(DatabaseUnavailableError);
      expect(String((error as Error).message)).toMatch(constraint);
    }

    it.each([
      ['a space', 'alice smith'],
      ['a slash', 'team/alice'],
      ['a leading dot', '.alice'],
      ['a leading dash', '-alice'],
      ['129 characters', 'a'.repeat(129)],
      ['nothing', ''],
      ['a trailing newline', 'alice\n'],
    ])('refuses an owner with %s (the API_KEYS owner syntax)', async (_case, ownerId) => {
      await refused(input({ ownerId }), /api_keys_owner_id_check|constraint/i);
      // Also straight in SQL, whatever the application does.
      await expect(
        sql.query(`INSERT INTO api_keys (id, owner_id, key_hash, key_prefix, created_at) VALUES ($1, $2, $3, 'sk-files-x', now())`, [
          randomUUID(),
          ownerId,
          generateApiKey().hash,
        ]),
      ).rejects.toThrow(/api_keys_owner_id_check/);
    });

    it.each(['alice', 'team.a@example.com', 'A_b-c.9', `a${'b'.repeat(127)}`])('accepts the owner %p', async (ownerId) => {
      expect((await repository.create(input({ ownerId }))).ownerId).toBe(ownerId);
    });

    it.each([31, 33, 0])('refuses a key hash of %i bytes', async (length) => {
      await refused(input({ keyHash: Buffer.alloc(length, 7) }), /api_keys_key_hash_check|constraint/i);
    });

    it('refuses a second key with the same digest', async () => {
      const data = input();
      await repository.create(data);
      await refused(input({ keyHash: data.keyHash, ownerId: 'bob' }), /unique|constraint/i);
    });

    it('refuses a name over 200 characters and accepts one of 200', async () => {
      await refused(input({ name: 'n'.repeat(201) }), /api_keys_name_check|constraint/i);
      expect((await repository.create(input({ name: 'n'.repeat(200) }))).name).toHaveLength(200);
    });

    it('defaults the name to empty', async () => {
      const { hash } = generateApiKey();
      await sql.query(`INSERT INTO api_keys (id, owner_id, key_hash, key_prefix, created_at) VALUES ($1, 'alice', $2, 'sk-files-x', now())`, [
        randomUUID(),
        hash,
      ]);
      const { rows } = await sql.query(`SELECT name, last_used_at, revoked_at FROM api_keys`);
      expect(rows).toEqual([{ name: '', last_used_at: null, revoked_at: null }]);
    });
  });

  describe('list', () => {
    it('lists oldest first, by owner or everyone, revoked ones only when asked', async () => {
      const a1 = await repository.create(input({ ownerId: 'alice', createdAt: at(1) }));
      const b1 = await repository.create(input({ ownerId: 'bob', createdAt: at(2) }));
      const a2 = await repository.create(input({ ownerId: 'alice', createdAt: at(3) }));
      await repository.revoke(a1.id, at(4));
      const ids = (keys: { id: string }[]) => keys.map((k) => k.id);
      expect(ids(await repository.list())).toEqual([b1.id, a2.id]);
      expect(ids(await repository.list(undefined, true))).toEqual([a1.id, b1.id, a2.id]);
      expect(ids(await repository.list('alice'))).toEqual([a2.id]);
      expect(ids(await repository.list('alice', true))).toEqual([a1.id, a2.id]);
      expect(await repository.list('carol', true)).toEqual([]);
    });

    it('never returns the digest', async () => {
      const data = input();
      await repository.create(data);
      const [listed] = await repository.list();
      expect(Object.keys(listed).sort()).toEqual(['createdAt', 'id', 'lastUsedAt', 'name', 'ownerId', 'prefix', 'revokedAt']);
      expect(JSON.stringify(listed)).not.toContain(data.keyHash.toString('hex'));
    });
  });

  describe('revoke', () => {
    it('revokes once; again is "already revoked" and keeps the first time; the key is no longer found', async () => {
      const data = input();
      const key = await repository.create(data);
      expect(await repository.revoke(key.id, at(10))).toEqual({ status: 'revoked', key: { ...key, revokedAt: at(10) } });
      expect(await repository.findActiveByHash(data.keyHash)).toBeNull();
      expect(await repository.revoke(key.id, at(20))).toEqual({ status: 'already_revoked', key: { ...key, revokedAt: at(10) } });
    });

    it('answers not_found for an unknown or malformed id', async () => {
      expect(await repository.revoke(randomUUID(), at(1))).toEqual({ status: 'not_found' });
      expect(await repository.revoke('not-a-uuid', at(1))).toEqual({ status: 'not_found' });
      expect(await repository.revoke("'; DROP TABLE api_keys; --", at(1))).toEqual({ status: 'not_found' });
    });

    it('revokes only the key it names', async () => {
      const [a, b] = [input(), input()];
      const key = await repository.create(a);
      await repository.create(b);
      await repository.revoke(key.id, at(1));
      expect(await repository.findActiveByHash(b.keyHash)).not.toBeNull();
    });
  });

  describe('touchLastUsed', () => {
    it('records the time, never moves it backwards, and leaves revoked keys alone', async () => {
      const data = input();
      const key = await repository.create(data);
      await repository.touchLastUsed(key.id, at(60));
      expect((await repository.findActiveByHash(data.keyHash))!.lastUsedAt).toEqual(at(60));
      await repository.touchLastUsed(key.id, at(30));
      expect((await repository.findById(key.id))!.lastUsedAt).toEqual(at(60));
      await repository.revoke(key.id, at(90));
      await repository.touchLastUsed(key.id, at(120));
      expect((await repository.findById(key.id))!.lastUsedAt).toEqual(at(60));
    });
  });

  it('turns an unreachable database into DatabaseUnavailableError, never "no such key"', async () => {
    const url = new URL(database.url);
    url.port = String(await freePort());
    const down = new ApiKeysDatabase({ url: url.toString(), poolMax: 1, connectTimeoutMs: 1_000, statementTimeoutMs: 1_000 });
    try {
      const unreachable = new ApiKeysRepository(down);
      await expect(unreachable.findActiveByHash(generateApiKey().hash)).rejects.toBeInstanceOf(DatabaseUnavailableError);
      await expect(unreachable.list()).rejects.toBeInstanceOf(DatabaseUnavailableError);
    } finally {
      await down.close();
    }
  });

  it('serves the managed resolver end to end: a created key resolves, a revoked one does not (cache off)', async () => {
    const service = new ApiKeysService(repository, new SystemClock());
    const { key, record } = await service.create('dora', 'ci');
    const resolver = new ManagedApiKeyResolver(repository, new SystemClock(), { envKeys: new Map(), cacheSeconds: 0 });
    expect(await resolver.resolve(bearer(key))).toBe('dora');
    await service.revoke(record.id);
    expect(await resolver.resolve(bearer(key))).toEqual({ reason: 'invalid' });
  });
});
