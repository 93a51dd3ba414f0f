import type { Request } from 'express';
import { SystemClock } from '../../src/common/clock';
import { CONFIG_DEFAULTS } from '../../src/config/app-config';
import { ApiKeyOwnerResolver, OwnerResolver, type Unauthenticated } from '../../src/files/auth/owner-resolver';
import { FilesInstance } from '../../src/files/files.instance';
import { FILES_DEFAULTS, resolveFilesOptions, type FilesModuleSettings } from '../../src/files/files.options';
import { MemoryFileStorage } from '../support/fakes/memory-file-storage';

const MINIMAL: FilesModuleSettings = { database: { url: 'postgres://db/files' }, storage: { driver: 'fs', dir: '/tmp/files' } };

const requestWith = (headers: Record<string, string> = {}) => ({ headers }) as unknown as Request;

/** What the resolver the options carry answers for a request with these headers. */
async function ownerFor(settings: Partial<FilesModuleSettings>, headers: Record<string, string> = {}): Promise<string | Unauthenticated> {
  return resolveFilesOptions({ ...MINIMAL, ...settings }).ownerResolver.resolve(requestWith(headers));
}

describe(resolveFilesOptions.name, () => {
  describe('defaults', () => {
    it('fills everything but database.url and storage with FILES_DEFAULTS, jobs on, system clock', () => {
      const options = resolveFilesOptions(MINIMAL);
      expect(options).toEqual({
        database: { url: 'postgres://db/files', poolMax: 10, connectTimeoutMs: 5000, statementTimeoutMs: 15_000 },
        storage: MINIMAL.storage,
        ownerResolver: expect.any(ApiKeyOwnerResolver),
        limits: {
          maxBatchFileBytes: 200 * 1024 * 1024,
          maxFileBytes: 512 * 1024 * 1024,
          quotaBytesPerOwner: 2048 * 1024 * 1024,
          maxConcurrentUploads: 64,
          maxConcurrentUploadsPerOwner: 8,
        },
        expiry: { sweepIntervalSeconds: 60, batchSize: 1000 },
        reconcile: { intervalSeconds: 600, staleAfterSeconds: 120 },
        jobs: { expiry: true, reconcile: true },
        clock: undefined,
      });
    });

    it("are the standalone service's defaults", () => {
      const env = (name: keyof typeof CONFIG_DEFAULTS) => Number(CONFIG_DEFAULTS[name]);
      expect(FILES_DEFAULTS).toEqual({
        database: {
          poolMax: env('DATABASE_POOL_MAX'),
          connectTimeoutMs: env('DATABASE_CONNECT_TIMEOUT_MS'),
          statementTimeoutMs: env('DATABASE_STATEMENT_TIMEOUT_MS'),
        },
        limits: {
          maxBatchFileBytes: env('FILES_MAX_BATCH_FILE_BYTES'),
          maxFileBytes: env('FILES_MAX_FILE_BYTES'),
          quotaBytesPerOwner: env('FILES_QUOTA_BYTES_PER_OWNER'),
          maxConcurrentUploads: env('FILES_MAX_CONCURRENT_UPLOADS'),
          maxConcurrentUploadsPerOwner: env('FILES_MAX_CONCURRENT_UPLOADS_PER_OWNER'),
        },
        expiry: { sweepIntervalSeconds: env('FILES_EXPIRY_SWEEP_INTERVAL_SECONDS'), batchSize: env('FILES_EXPIRY_SWEEP_BATCH_SIZE') },
        reconcile: { intervalSeconds: env('FILES_RECONCILE_INTERVAL_SECONDS'), staleAfterSeconds: env('FILES_PENDING_STALE_SECONDS') },
      });
    });

    it('merges partial groups field by field, keeping the defaults of fields not given', () => {
      const options = resolveFilesOptions({
        ...MINIMAL,
        database: { url: 'postgres://db/files', poolMax: 3 },
        limits: { quotaBytesPerOwner: 5000 },
        expiry: { batchSize: 7 },
        reconcile: { staleAfterSeconds: 30 },
      });
      expect(options.database).toEqual({ ...FILES_DEFAULTS.database, url: 'postgres://db/files', poolMax: 3 });
      expect(options.limits).toEqual({ ...FILES_DEFAULTS.limits, quotaBytesPerOwner: 5000 });
      expect(options.expiry).toEqual({ sweepIntervalSeconds: 60, batchSize: 7 });
      expect(options.reconcile).toEqual({ intervalSeconds: 600, staleAfterSeconds: 30 });
    });

    it('does not share or mutate FILES_DEFAULTS between instances', () => {
      const a = resolveFilesOptions({ ...MINIMAL, limits: { maxFileBytes: 1 } });
      const b = resolveFilesOptions(MINIMAL);
      a.limits.quotaBytesPerOwner = 1;
      expect(b.limits).toEqual(FILES_DEFAULTS.limits);
      expect(FILES_DEFAULTS.limits.quotaBytesPerOwner).toBe(2048 * 1024 * 1024);
    });

    it('passes a ready FileStorage instance and a clock through untouched', () => {
      const storage = new MemoryFileStorage();
      const clock = new SystemClock();
      const options = resolveFilesOptions({ ...MINIMAL, storage, clock });
      expect(options.storage).toBe(storage);
      expect(options.clock).toBe(clock);
    });
  });

  describe('jobs', () => {
    it.each([
      [undefined, { expiry: true, reconcile: true }],
      [true, { expiry: true, reconcile: true }],
      [false, { expiry: false, reconcile: false }],
      [{}, { expiry: true, reconcile: true }],
      [{ expiry: false }, { expiry: false, reconcile: true }],
      [{ reconcile: false }, { expiry: true, reconcile: false }],
      [{ expiry: false, reconcile: false }, { expiry: false, reconcile: false }],
    ] as const)('normalises %p to %p', (jobs, expected) => {
      expect(resolveFilesOptions({ ...MINIMAL, jobs }).jobs).toEqual(expected);
    });
  });

  describe('owner resolver', () => {
    it('uses an OwnerResolver instance as is', () => {
      class Fixed extends OwnerResolver {
        resolve(): string {
          return 'fixed';
        }
      }
      const resolver = new Fixed();
      expect(resolveFilesOptions({ ...MINIMAL, ownerResolver: resolver }).ownerResolver).toBe(resolver);
    });

    it('uses a resolver-shaped object from another copy of the package as is', () => {
      const foreign = { resolve: () => 'foreign' } as unknown as OwnerResolver;
      expect(resolveFilesOptions({ ...MINIMAL, ownerResolver: foreign }).ownerResolver).toBe(foreign);
    });

    it('adapts a function: its owner id, from sync and async functions, given the request', async () => {
      const seen: Request[] = [];
      const fn = (request: Request) => {
        seen.push(request);
        return request.headers['x-user'] as string | undefined;
      };
      await expect(ownerFor({ ownerResolver: fn }, { 'x-user': 'alice' })).resolves.toBe('alice');
      await expect(ownerFor({ ownerResolver: async () => 'bob' })).resolves.toBe('bob');
      expect(seen[0].headers['x-user']).toBe('alice');
    });

    it.each([null, undefined, ''])(
      'answers a function returning %p with "missing" without an Authorization header, "invalid" with one',
      async (value) => {
        const fn = () => value;
        await expect(ownerFor({ ownerResolver: fn })).resolves.toEqual({ reason: 'missing' });
        await expect(ownerFor({ ownerResolver: fn }, { authorization: 'Bearer whatever' })).resolves.toEqual({ reason: 'invalid' });
        await expect(ownerFor({ ownerResolver: async () => value }, { authorization: 'x' })).resolves.toEqual({ reason: 'invalid' });
      },
    );

    it('treats a non-string answer of a function as no owner', async () => {
      const fn = (() => 42) as unknown as () => string;
      await expect(ownerFor({ ownerResolver: fn })).resolves.toEqual({ reason: 'missing' });
    });

    it("lets a function's own error propagate (the request fails; it is not taken as a 401)", async () => {
      const fn = () => {
        throw new Error('auth backend down');
      };
      await expect(ownerFor({ ownerResolver: fn })).rejects.toThrow('auth backend down');
    });

    it.each([
      ['a Record', { 'sk-host-key-0001': 'alice', 'sk-host-key-0002': 'bob' }],
      ['a Map', new Map([['sk-host-key-0001', 'alice'], ['sk-host-key-0002', 'bob']])],
    ])('defaults to Bearer API keys given as %s', async (_, apiKeys) => {
      await expect(ownerFor({ apiKeys }, { authorization: 'Bearer sk-host-key-0001' })).resolves.toBe('alice');
      await expect(ownerFor({ apiKeys }, { authorization: 'Bearer sk-host-key-0002' })).resolves.toBe('bob');
      await expect(ownerFor({ apiKeys }, { authorization: 'Bearer sk-host-key-0003' })).resolves.toEqual({ reason: 'invalid' });
      await expect(ownerFor({ apiKeys })).resolves.toEqual({ reason: 'missing' });
    });

    it('without a resolver or keys, authenticates nobody', async () => {
      await expect(ownerFor({}, { authorization: 'Bearer sk-anything-at-all' })).resolves.toEqual({ reason: 'invalid' });
      await expect(ownerFor({})).resolves.toEqual({ reason: 'missing' });
    });

    it('ignores apiKeys when an ownerResolver is given', async () => {
      const settings = { apiKeys: { 'sk-host-key-0001': 'alice' }, ownerResolver: () => null };
      await expect(ownerFor(settings, { authorization: 'Bearer sk-host-key-0001' })).resolves.toEqual({ reason: 'invalid' });
    });
  });

  describe('required settings', () => {
    it.each([
      ['no settings at all', undefined],
      ['no database', { storage: MINIMAL.storage }],
      ['no database.url', { database: {}, storage: MINIMAL.storage }],
      ['an empty database.url', { database: { url: '' }, storage: MINIMAL.storage }],
    ])('refuses %s, naming database.url', (_, settings) => {
      expect(() => resolveFilesOptions(settings as unknown as FilesModuleSettings)).toThrow('FilesModule: database.url is required');
    });

    it.each([undefined, null])('refuses storage %p, naming storage', (storage) => {
      const settings = { database: MINIMAL.database, storage } as unknown as FilesModuleSettings;
      expect(() => resolveFilesOptions(settings)).toThrow('FilesModule: storage is required');
    });
  });
});

describe(FilesInstance.name, () => {
  it("scopes the default instance's names as the standalone service always had them", () => {
    expect(new FilesInstance('files').scoped('expiry-sweep')).toBe('files-expiry-sweep');
    expect(new FilesInstance('files').scoped('reconcile')).toBe('files-reconcile');
  });

  it('scopes every other instance under its own name', () => {
    expect(new FilesInstance('inputs').scoped('expiry-sweep')).toBe('inputs:expiry-sweep');
    expect(new FilesInstance('archive').scoped('reconcile')).toBe('archive:reconcile');
    expect(new FilesInstance('files#2').scoped('expiry-sweep')).toBe('files#2:expiry-sweep');
  });

  it('gives two instances distinct names for the same job', () => {
    const names = ['files', 'inputs', 'archive', 'files#2'].map((n) => new FilesInstance(n).scoped('expiry-sweep'));
    expect(new Set(names).size).toBe(names.length);
  });
});
