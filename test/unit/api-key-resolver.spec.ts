import type { Request } from 'express';
import { generateApiKey } from '../../src/api-keys/api-key';
import type { ActiveApiKey } from '../../src/api-keys/api-key.types';
import { type ApiKeyLookup, ManagedApiKeyResolver, type ManagedApiKeyResolverOptions } from '../../src/api-keys/managed-api-key.resolver';
import { Clock } from '../../src/common/clock';
import { apiKeyDigest } from '../../src/files/auth/owner-resolver';
import { DatabaseUnavailableError } from '../../src/files/files.errors';

/** A clock that only moves when the test says so. */
class ManualClock extends Clock {
  private ms = Date.parse('2026-11-26T10:00:00Z');
  now(): Date {
    return new Date(this.ms);
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

/** The repository port in memory: what findActiveByHash would find, and every call made. */
class FakeKeys implements ApiKeyLookup {
  private readonly rows = new Map<string, ActiveApiKey & { revoked: boolean }>();
  lookups = 0;
  touches: { id: string; at: Date }[] = [];
  failLookups: Error | null = null;
  failTouches: Error | null = null;
  /** Resolves pending lookups only when the test releases them (null: answer at once). */
  gate: Promise<void> | null = null;

  add(key: string, ownerId: string, options: { lastUsedAt?: Date; storedHash?: Buffer } = {}): string {
    const id = `00000000-0000-4000-8000-${String(this.rows.size + 1).padStart(12, '0')}`;
    const row = { id, ownerId, keyHash: options.storedHash ?? apiKeyDigest(key), lastUsedAt: options.lastUsedAt ?? null, revoked: false };
    this.rows.set(apiKeyDigest(key).toString('hex'), row);
    return id;
  }

  revoke(key: string): void {
    this.rows.get(apiKeyDigest(key).toString('hex'))!.revoked = true;
  }

  async findActiveByHash(keyHash: Buffer): Promise<ActiveApiKey | null> {
    this.lookups++;
    if (this.gate) await this.gate;
    if (this.failLookups) throw this.failLookups;
    const row = this.rows.get(keyHash.toString('hex'));
    if (!row || row.revoked) return null;
    return { id: row.id, ownerId: row.ownerId, keyHash: row.keyHash, lastUsedAt: row.lastUsedAt };
  }

  async touchLastUsed(id: string, now: Date): Promise<void> {
    this.touches.push({ id, at: now });
    if (this.failTouches) throw this.failTouches;
  }
}

const ENV_KEY = 'sk-env-alice-00000001';
const bearer = (key: string) => ({ headers: { authorization: `Bearer ${key}` } }) as unknown as Request;
const withHeader = (authorization?: string) =>
  ({ headers: authorization === undefined ? {} : { authorization } }) as unknown as Request;
const newKey = () => generateApiKey().key;

describe(ManagedApiKeyResolver.name, () => {
  let keys: FakeKeys;
  let clock: ManualClock;
  const resolverWith = (options: Partial<ManagedApiKeyResolverOptions> = {}) =>
    new ManagedApiKeyResolver(keys, clock, { envKeys: new Map([[ENV_KEY, 'alice']]), cacheSeconds: 5, ...options });
  beforeEach(() => {
    keys = new FakeKeys();
    clock = new ManualClock();
  });

  describe('which keys it accepts', () => {
    it('resolves a key from API_KEYS without asking the database', async () => {
      expect(await resolverWith().resolve(bearer(ENV_KEY))).toBe('alice');
      expect(keys.lookups).toBe(0);
      expect(keys.touches).toEqual([]);
    });

    it('lets API_KEYS win when the same key is also stored in the database', async () => {
      const key = newKey();
      keys.add(key, 'dora');
      const resolver = resolverWith({ envKeys: new Map([[key, 'erin']]) });
      expect(await resolver.resolve(bearer(key))).toBe('erin');
      expect(keys.lookups).toBe(0);
    });

    it('resolves a managed key to its owner from the database, and records its use', async () => {
      const key = newKey();
      const id = keys.add(key, 'dora');
      expect(await resolverWith().resolve(bearer(key))).toBe('dora');
      expect(keys.lookups).toBe(1);
      expect(keys.touches).toEqual([{ id, at: clock.now() }]);
    });

    it('works with no API_KEYS at all', async () => {
      const key = newKey();
      keys.add(key, 'dora');
      const resolver = resolverWith({ envKeys: new Map() });
      expect(await resolver.resolve(bearer(key))).toBe('dora');
      expect(await resolver.resolve(bearer(ENV_KEY))).toEqual({ reason: 'invalid' });
    });

    it('refuses an unknown managed key and a revoked one', async () => {
      const revoked = newKey();
      keys.add(revoked, 'dora');
      keys.revoke(revoked);
      const resolver = resolverWith();
      expect(await resolver.resolve(bearer(newKey()))).toEqual({ reason: 'invalid' });
      expect(await resolver.resolve(bearer(revoked))).toEqual({ reason: 'invalid' });
      expect(keys.lookups).toBe(2);
      expect(keys.touches).toEqual([]);
    });

    it('refuses a row whose stored digest is not the presented key’s (the constant-time confirmation)', async () => {
      const key = newKey();
      keys.add(key, 'dora', { storedHash: apiKeyDigest(`${key}x`) });
      expect(await resolverWith().resolve(bearer(key))).toEqual({ reason: 'invalid' });
    });

    it.each([
      ['an unknown key of another shape', 'Bearer sk-mallory-000000001'],
      ['a managed key one character short', `Bearer ${'sk-files-'}${'A'.repeat(42)}`],
      ['a managed key with a character outside base64url', `Bearer sk-files-${'A'.repeat(42)}+`],
    ])('refuses %s without asking the database', async (_case, header) => {
      expect(await resolverWith().resolve(withHeader(header))).toEqual({ reason: 'invalid' });
      expect(keys.lookups).toBe(0);
    });

    it.each([
      ['no header', undefined, 'missing'],
      ['a blank header', '  ', 'missing'],
      ['a scheme without a key', 'Bearer', 'invalid'],
      ['the Basic scheme', 'Basic c2stYWxpY2U6', 'invalid'],
      ['two keys', `Bearer ${ENV_KEY} ${ENV_KEY}`, 'invalid'],
      ['a key glued to the scheme', `Bearer${ENV_KEY}`, 'invalid'],
    ])('parses the header exactly like the static resolver: %s is %s', async (_case, header, reason) => {
      expect(await resolverWith().resolve(withHeader(header))).toEqual({ reason });
      expect(keys.lookups).toBe(0);
    });

    it('accepts the scheme in any case and blanks around a managed key', async () => {
      const key = newKey();
      keys.add(key, 'dora');
      expect(await resolverWith().resolve(withHeader(`bEaReR \t${key}\t `))).toBe('dora');
    });

    it('lets a database failure through instead of calling the key invalid', async () => {
      const key = newKey();
      keys.add(key, 'dora');
      keys.failLookups = new DatabaseUnavailableError('database unavailable');
      await expect(resolverWith().resolve(bearer(key))).rejects.toBeInstanceOf(DatabaseUnavailableError);
      // API_KEYS keep working while the database is down.
      expect(await resolverWith().resolve(bearer(ENV_KEY))).toBe('alice');
    });
  });

  describe('cache', () => {
    it('trusts a found key for API_KEY_CACHE_SECONDS, then asks again (a revocation takes effect)', async () => {
      const key = newKey();
      keys.add(key, 'dora');
      const resolver = resolverWith({ cacheSeconds: 5 });
      expect(await resolver.resolve(bearer(key))).toBe('dora');
      keys.revoke(key);
      clock.advance(4_999);
      expect(await resolver.resolve(bearer(key))).toBe('dora');
      expect(keys.lookups).toBe(1);
      clock.advance(1);
      expect(await resolver.resolve(bearer(key))).toEqual({ reason: 'invalid' });
      expect(keys.lookups).toBe(2);
    });

    it('counts the TTL from when the database was asked, not from the last use', async () => {
      const key = newKey();
      keys.add(key, 'dora');
      const resolver = resolverWith({ cacheSeconds: 5 });
      await resolver.resolve(bearer(key));
      for (let i = 0; i < 4; i++) {
        clock.advance(1_000);
        await resolver.resolve(bearer(key));
      }
      expect(keys.lookups).toBe(1);
      clock.advance(1_000);
      await resolver.resolve(bearer(key));
      expect(keys.lookups).toBe(2);
    });

    it('asks the database on every request when API_KEY_CACHE_SECONDS is 0', async () => {
      const key = newKey();
      keys.add(key, 'dora');
      const resolver = resolverWith({ cacheSeconds: 0 });
      expect(await resolver.resolve(bearer(key))).toBe('dora');
      expect(await resolver.resolve(bearer(key))).toBe('dora');
      keys.revoke(key);
      expect(await resolver.resolve(bearer(key))).toEqual({ reason: 'invalid' });
      expect(keys.lookups).toBe(3);
    });

    it('never remembers an unknown key: one created right after works at once', async () => {
      const key = newKey();
      const resolver = resolverWith({ cacheSeconds: 5 });
      expect(await resolver.resolve(bearer(key))).toEqual({ reason: 'invalid' });
      keys.add(key, 'dora');
      expect(await resolver.resolve(bearer(key))).toBe('dora');
      expect(keys.lookups).toBe(2);
    });

    it('shares one query between concurrent requests with the same key', async () => {
      const key = newKey();
      keys.add(key, 'dora');
      let release!: () => void;
      keys.gate = new Promise((resolve) => (release = resolve));
      const resolver = resolverWith({ cacheSeconds: 0 });
      const pending = [1, 2, 3].map(() => resolver.resolve(bearer(key)));
      release();
      expect(await Promise.all(pending)).toEqual(['dora', 'dora', 'dora']);
      expect(keys.lookups).toBe(1);
      keys.gate = null;
      await resolver.resolve(bearer(key));
      expect(keys.lookups).toBe(2);
    });

    it('holds at most cacheMaxEntries keys, dropping the oldest', async () => {
      const [a, b, c] = [newKey(), newKey(), newKey()];
      keys.add(a, 'a');
      keys.add(b, 'b');
      keys.add(c, 'c');
      const resolver = resolverWith({ cacheSeconds: 60, cacheMaxEntries: 2 });
      for (const key of [a, b, c]) await resolver.resolve(bearer(key));
      expect(keys.lookups).toBe(3);
      await resolver.resolve(bearer(c));
      await resolver.resolve(bearer(b));
      expect(keys.lookups).toBe(3);
      expect(await resolver.resolve(bearer(a))).toBe('a');
      expect(keys.lookups).toBe(4);
    });

    it('does not keep the key itself', async () => {
      const key = newKey();
      keys.add(key, 'dora');
      const resolver = resolverWith();
      await resolver.resolve(bearer(key));
      const inside = (resolver as unknown as { cache: Map<string, unknown> }).cache;
      expect(inside.size).toBe(1);
      expect(JSON.stringify([...inside])).not.toContain(key);
      expect(JSON.stringify([...inside])).not.toContain(key.slice('sk-files-'.length));
    });
  });

  describe('last use', () => {
    it('is written at most once a minute per key', async () => {
      const [key, other] = [newKey(), newKey()];
      const id = keys.add(key, 'dora');
      const otherId = keys.add(other, 'erin');
      const resolver = resolverWith({ cacheSeconds: 0 });
      const first = clock.now();
      await resolver.resolve(bearer(key));
      clock.advance(30_000);
      await resolver.resolve(bearer(key));
      await resolver.resolve(bearer(other));
      clock.advance(29_999);
      await resolver.resolve(bearer(key));
      expect(keys.touches).toEqual([
        { id, at: first },
        { id: otherId, at: new Date(first.getTime() + 30_000) },
      ]);
      clock.advance(1);
      await resolver.resolve(bearer(key));
      expect(keys.touches).toHaveLength(3);
      expect(keys.touches[2]).toEqual({ id, at: clock.now() });
    });

    it('is also throttled while the key is served from the cache', async () => {
      const key = newKey();
      keys.add(key, 'dora');
      const resolver = resolverWith({ cacheSeconds: 3600 });
      for (let i = 0; i < 10; i++) {
        await resolver.resolve(bearer(key));
        clock.advance(10_000);
      }
      expect(keys.lookups).toBe(1);
      // At 0 s and at 60 s.
      expect(keys.touches.map((t) => t.at.getTime() - keys.touches[0].at.getTime())).toEqual([0, 60_000]);
    });

    it('is not written again when the database says the key was used less than a minute ago', async () => {
      const key = newKey();
      keys.add(key, 'dora', { lastUsedAt: new Date(clock.now().getTime() - 20_000) });
      const resolver = resolverWith({ cacheSeconds: 0 });
      await resolver.resolve(bearer(key));
      expect(keys.touches).toEqual([]);
      clock.advance(40_000);
      await resolver.resolve(bearer(key));
      expect(keys.touches).toHaveLength(1);
    });

    it('failing to be written only gets logged: the request is still authenticated', async () => {
      const key = newKey();
      keys.add(key, 'dora');
      keys.failTouches = new DatabaseUnavailableError('database unavailable');
      const resolver = resolverWith();
      const logger = (resolver as unknown as { logger: { warn: (message: string) => void } }).logger;
      const logged = jest.spyOn(logger, 'warn').mockImplementation(() => undefined);
      expect(await resolver.resolve(bearer(key))).toBe('dora');
      await new Promise((resolve) => setImmediate(resolve));
      expect(logged).toHaveBeenCalledTimes(1);
      expect(logged.mock.calls[0][0]).toMatch(/could not record the use of API key .*database unavailable/);
      expect(logged.mock.calls[0][0]).not.toContain(key);
    });
  });
});
