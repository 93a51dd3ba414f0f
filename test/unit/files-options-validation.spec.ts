import { OwnerResolver } from '../../src/files/auth/owner-resolver';
import { loadConfig, type StorageConfig } from '../../src/config/app-config';
import { resolveFilesOptions, S3_DEFAULTS, type FilesModuleSettings } from '../../src/files/files.options';

const MINIMAL: FilesModuleSettings = { database: { url: 'postgres://db/files' }, storage: { driver: 'fs', dir: '/tmp/files' } };

// A host's settings get the checks the standalone service puts on its environment: bad values
// that would fail silently later (staleAfterSeconds 0: every upload in progress looks abandoned;
// batchSize 0: the sweeper removes nothing; maxConcurrentUploads 0: every upload is a 429) stop
// the module at boot with the setting named.
describe('resolveFilesOptions validation', () => {
  it.each([
    ['limits.maxFileBytes', { limits: { maxFileBytes: -1 } }],
    ['limits.maxFileBytes', { limits: { maxFileBytes: Number.NaN } }],
    ['limits.maxBatchFileBytes', { limits: { maxBatchFileBytes: '1000' as unknown as number } }],
    ['limits.quotaBytesPerOwner', { limits: { quotaBytesPerOwner: 1.5 } }],
    ['limits.maxConcurrentUploads', { limits: { maxConcurrentUploads: 0 } }],
    ['expiry.batchSize', { expiry: { batchSize: 0 } }],
    ['expiry.sweepIntervalSeconds', { expiry: { sweepIntervalSeconds: Number.NaN } }],
    ['reconcile.staleAfterSeconds', { reconcile: { staleAfterSeconds: 0 } }],
    ['database.poolMax', { database: { url: 'postgres://db/files', poolMax: 0 } }],
    ['storageKeyPrefix', { storageKeyPrefix: 'no-trailing-slash' }],
    ['storageKeyPrefix', { storageKeyPrefix: '../up/' }],
  ])('refuses a bad %s, naming it', (name, bad) => {
    expect(() => resolveFilesOptions({ ...MINIMAL, ...bad } as FilesModuleSettings)).toThrow(name);
  });

  // A class is a function too: it is wrapped as a resolver function, and every request then
  // fails with "Class constructor … cannot be invoked without 'new'" (a 500), not at boot.
  it('refuses an OwnerResolver class where an instance or a function is expected', () => {
    class HeaderResolver extends OwnerResolver {
      resolve(): string {
        return 'x';
      }
    }
    const settings = { ...MINIMAL, ownerResolver: HeaderResolver as unknown as OwnerResolver };
    expect(() => resolveFilesOptions(settings)).toThrow(/ownerResolver/);
  });
});

describe('resolveFilesOptions S3 settings', () => {
  const s3 = (storage: Record<string, unknown>) =>
    resolveFilesOptions({ database: { url: 'postgres://db/files' }, storage: { driver: 's3', bucket: 'b', ...storage } as FilesModuleSettings['storage'] });

  it("fills everything but the bucket with the standalone service's defaults", () => {
    expect(s3({}).storage).toEqual({ driver: 's3', bucket: 'b', ...S3_DEFAULTS });
    const { driver, bucket, ...fromEnv } = loadConfig({ DATABASE_URL: 'postgres://db/x', STORAGE_DRIVER: 's3', S3_BUCKET: 'bkt' }).storage as Extract<StorageConfig, { driver: 's3' }>;
    expect([driver, bucket]).toEqual(['s3', 'bkt']);
    expect(S3_DEFAULTS).toEqual(fromEnv);
  });

  it('keeps what the host gives, ignoring explicit undefined', () => {
    expect(s3({ endpoint: 'http://s3.local', forcePathStyle: true, queueSize: 4, region: undefined }).storage).toMatchObject({
      endpoint: 'http://s3.local',
      forcePathStyle: true,
      queueSize: 4,
      region: S3_DEFAULTS.region,
    });
  });

  it.each([
    ['partSizeBytes', { partSizeBytes: 1024 }],
    ['queueSize', { queueSize: 0 }],
    ['requestTimeoutMs', { requestTimeoutMs: 1.5 }],
    ['accessKeyId', { accessKeyId: 'only-one' }],
    ['bucket', { bucket: '' }],
  ])('refuses a bad %s, naming it', (name, bad) => {
    expect(() => s3(bad)).toThrow(name);
  });
});
