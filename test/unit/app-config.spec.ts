import { ConfigError, loadConfig, parseApiKeys } from '../../src/config/app-config';

const KEY = 'sk-test-0123456789abcdef';
/** The smallest valid environment: everything else has a default. */
const baseEnv = (overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv => ({
  DATABASE_URL: 'postgres://files:secret@db.internal:5432/files',
  API_KEYS: `${KEY}:alice`,
  ...overrides,
});
const s3Env = (overrides: Record<string, string | undefined> = {}) =>
  baseEnv({ STORAGE_DRIVER: 's3', S3_BUCKET: 'files-bucket', ...overrides });

/** The ConfigError loadConfig throws for `env`; fails the test when it throws nothing or something else. */
function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw new Error(`expected a ConfigError, got ${String(error)}`);
  }
  throw new Error('expected a ConfigError, but nothing was thrown');
}

function expectRefused(env: NodeJS.ProcessEnv, variable: string): ConfigError {
  const error = configError(() => loadConfig(env));
  expect(error.variable).toBe(variable);
  expect(error.message).toContain(variable);
  return error;
}

describe(loadConfig.name, () => {
  it('applies the documented defaults', () => {
    const config = loadConfig(baseEnv());
    expect(config.port).toBe(3000);
    expect(config.storage).toEqual({ driver: 'fs', dir: './data/files' });
    expect(config.limits).toEqual({
      maxBatchFileBytes: 200 * 1024 * 1024,
      maxFileBytes: 512 * 1024 * 1024,
      quotaBytesPerOwner: 2 * 1024 * 1024 * 1024,
      maxConcurrentUploads: 64,
      maxConcurrentUploadsPerOwner: 8,
    });
    expect(config.expiry.sweepIntervalSeconds).toBe(60);
    expect(config.database.url).toBe('postgres://files:secret@db.internal:5432/files');
    expect(config.apiKeys).toEqual(new Map([[KEY, 'alice']]));
    expect(config.log).toEqual({ level: 'log', format: 'json' });
  });

  it('treats empty and whitespace-only variables as unset', () => {
    const config = loadConfig(baseEnv({ PORT: '', STORAGE_DRIVER: '   ', LOG_LEVEL: '' }));
    expect(config.port).toBe(3000);
    expect(config.storage.driver).toBe('fs');
    expect(config.log.level).toBe('log');
  });

  it('reads every documented variable', () => {
    const config = loadConfig(
      s3Env({
        PORT: '8080',
        S3_ENDPOINT: 'http://minio:9000',
        S3_REGION: 'eu-west-1',
        S3_ACCESS_KEY_ID: 'AKIAEXAMPLE',
        S3_SECRET_ACCESS_KEY: 'secret-access-key',
        S3_FORCE_PATH_STYLE: 'true',
        FILES_MAX_BATCH_FILE_BYTES: '100',
        FILES_MAX_FILE_BYTES: '200',
        FILES_QUOTA_BYTES_PER_OWNER: '1000',
        FILES_EXPIRY_SWEEP_INTERVAL_SECONDS: '0',
      }),
    );
    expect(config.port).toBe(8080);
    expect(config.storage).toMatchObject({
      driver: 's3',
      endpoint: 'http://minio:9000',
      region: 'eu-west-1',
      bucket: 'files-bucket',
      accessKeyId: 'AKIAEXAMPLE',
      secretAccessKey: 'secret-access-key',
      forcePathStyle: true,
    });
    expect(config.limits).toMatchObject({ maxBatchFileBytes: 100, maxFileBytes: 200, quotaBytesPerOwner: 1000 });
    expect(config.expiry.sweepIntervalSeconds).toBe(0);
  });

  it('reads FS_STORAGE_DIR for the fs driver and needs no S3 settings', () => {
    const config = loadConfig(baseEnv({ STORAGE_DRIVER: 'fs', FS_STORAGE_DIR: '/var/lib/files', S3_BUCKET: 'Not_Valid!' }));
    expect(config.storage).toEqual({ driver: 'fs', dir: '/var/lib/files' });
  });

  it('lets the S3 credentials fall back to the SDK chain when both are unset', () => {
    const config = loadConfig(s3Env());
    expect(config.storage).toMatchObject({ driver: 's3', accessKeyId: undefined, secretAccessKey: undefined, endpoint: undefined });
  });

  it('accepts a batch limit equal to the file limit', () => {
    const config = loadConfig(baseEnv({ FILES_MAX_BATCH_FILE_BYTES: '500', FILES_MAX_FILE_BYTES: '500' }));
    expect(config.limits.maxBatchFileBytes).toBe(500);
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '-1'],
    ['PORT', '65536'],
    ['PORT', '80.5'],
    ['PORT', '0x50'],
    ['FILES_MAX_FILE_BYTES', '0'],
    ['FILES_MAX_FILE_BYTES', '512MiB'],
    ['FILES_MAX_FILE_BYTES', '1e9'],
    ['FILES_MAX_FILE_BYTES', '99999999999999999999'],
    ['FILES_MAX_BATCH_FILE_BYTES', '-5'],
    ['FILES_QUOTA_BYTES_PER_OWNER', '0'],
    ['FILES_QUOTA_BYTES_PER_OWNER', '2 GiB'],
    ['FILES_MAX_CONCURRENT_UPLOADS', '0'],
    ['FILES_MAX_CONCURRENT_UPLOADS_PER_OWNER', '100001'],
    ['FILES_EXPIRY_SWEEP_INTERVAL_SECONDS', '-1'],
    ['FILES_EXPIRY_SWEEP_INTERVAL_SECONDS', '86401'],
    ['FILES_EXPIRY_SWEEP_BATCH_SIZE', '0'],
    ['FILES_PENDING_STALE_SECONDS', '0'],
    ['DATABASE_POOL_MAX', '0'],
    ['SHUTDOWN_GRACE_SECONDS', 'soon'],
    ['LOG_LEVEL', 'info'],
    ['LOG_LEVEL', 'LOG'],
    ['LOG_FORMAT', 'yaml'],
    ['STORAGE_DRIVER', 'gcs'],
    ['STORAGE_DRIVER', 'S3'],
    ['API_KEY_CACHE_SECONDS', '-1'],
    ['API_KEY_CACHE_SECONDS', '3601'],
    ['API_KEY_CACHE_SECONDS', '1.5'],
  ])('refuses %s=%p, naming the variable', (variable, value) => {
    expectRefused(baseEnv({ [variable]: value }), variable);
  });

  it('requires DATABASE_URL', () => {
    expectRefused(baseEnv({ DATABASE_URL: undefined }), 'DATABASE_URL');
    expectRefused(baseEnv({ DATABASE_URL: '  ' }), 'DATABASE_URL');
  });

  it('refuses a DATABASE_URL that is not a postgres URL, without echoing its password', () => {
    for (const url of ['mysql://u:hunter2@host/db', 'hunter2', 'http://u:hunter2@host/db']) {
      const error = expectRefused(baseEnv({ DATABASE_URL: url }), 'DATABASE_URL');
      expect(error.message).not.toContain('hunter2');
    }
  });

  it('accepts both postgres:// and postgresql:// URLs', () => {
    expect(loadConfig(baseEnv({ DATABASE_URL: 'postgresql://h/db' })).database.url).toBe('postgresql://h/db');
  });

  it('requires S3_BUCKET when, and only when, STORAGE_DRIVER=s3', () => {
    const error = expectRefused(s3Env({ S3_BUCKET: undefined }), 'S3_BUCKET');
    expect(error.message).toMatch(/STORAGE_DRIVER=s3/);
    expect(() => loadConfig(baseEnv({ STORAGE_DRIVER: 'fs' }))).not.toThrow();
  });

  it.each(['Files', 'ab', 'under_score', '-leading', 'trailing-', `b${'x'.repeat(63)}`])(
    'refuses the bucket name %p',
    (bucket) => {
      expectRefused(s3Env({ S3_BUCKET: bucket }), 'S3_BUCKET');
    },
  );

  it('refuses an S3_ENDPOINT that is not an http(s) URL', () => {
    expectRefused(s3Env({ S3_ENDPOINT: 'minio:9000' }), 'S3_ENDPOINT');
    expectRefused(s3Env({ S3_ENDPOINT: 'ftp://minio' }), 'S3_ENDPOINT');
    expectRefused(s3Env({ S3_ENDPOINT: 'http://minio:9000 http://backup:9000' }), 'S3_ENDPOINT');
    expectRefused(s3Env({ S3_ENDPOINT: 'http://' }), 'S3_ENDPOINT');
  });

  it('accepts an S3_ENDPOINT with a port or a path', () => {
    expect(loadConfig(s3Env({ S3_ENDPOINT: 'https://s3.example.com:8443/' })).storage).toMatchObject({
      endpoint: 'https://s3.example.com:8443/',
    });
    expect(loadConfig(s3Env({ S3_ENDPOINT: 'http://10.0.0.5:9000' })).storage).toMatchObject({ endpoint: 'http://10.0.0.5:9000' });
  });

  it('refuses half an S3 key pair, naming the missing half and never the secret', () => {
    expectRefused(s3Env({ S3_ACCESS_KEY_ID: 'AKIAEXAMPLE' }), 'S3_SECRET_ACCESS_KEY');
    const error = expectRefused(s3Env({ S3_SECRET_ACCESS_KEY: 'very-secret-value' }), 'S3_ACCESS_KEY_ID');
    expect(error.message).not.toContain('very-secret-value');
  });

  it('refuses a bad S3_FORCE_PATH_STYLE', () => {
    expectRefused(s3Env({ S3_FORCE_PATH_STYLE: 'maybe' }), 'S3_FORCE_PATH_STYLE');
  });

  it('refuses a batch limit larger than the file limit, naming the batch variable', () => {
    const error = expectRefused(
      baseEnv({ FILES_MAX_BATCH_FILE_BYTES: '1001', FILES_MAX_FILE_BYTES: '1000' }),
      'FILES_MAX_BATCH_FILE_BYTES',
    );
    expect(error.message).toContain('FILES_MAX_FILE_BYTES');
  });

  it('refuses a default batch limit above a lowered file limit', () => {
    expectRefused(baseEnv({ FILES_MAX_FILE_BYTES: String(100 * 1024 * 1024) }), 'FILES_MAX_BATCH_FILE_BYTES');
  });

  it('accepts no API_KEYS (only managed keys then authenticate)', () => {
    expect(loadConfig(baseEnv({ API_KEYS: undefined })).apiKeys).toEqual(new Map());
    expect(loadConfig(baseEnv({ API_KEYS: '  ' })).apiKeys).toEqual(new Map());
  });

  it('still refuses an API_KEYS that is set but lists no pair, or a bad one', () => {
    expectRefused(baseEnv({ API_KEYS: ' , ,' }), 'API_KEYS');
    expectRefused(baseEnv({ API_KEYS: 'short:alice' }), 'API_KEYS');
  });

  it('reads API_KEY_CACHE_SECONDS: 5 by default, 0 switches the cache off', () => {
    expect(loadConfig(baseEnv()).apiKeyCacheSeconds).toBe(5);
    expect(loadConfig(baseEnv({ API_KEY_CACHE_SECONDS: '0' })).apiKeyCacheSeconds).toBe(0);
    expect(loadConfig(baseEnv({ API_KEY_CACHE_SECONDS: '3600' })).apiKeyCacheSeconds).toBe(3600);
  });

  it('does not read process.env when given an environment', () => {
    const saved = process.env.PORT;
    process.env.PORT = 'not-a-port';
    try {
      expect(loadConfig(baseEnv()).port).toBe(3000);
    } finally {
      if (saved === undefined) delete process.env.PORT;
      else process.env.PORT = saved;
    }
  });
});

describe(parseApiKeys.name, () => {
  it('maps each key to its owner', () => {
    expect(parseApiKeys('sk-alice-000001:alice, sk-bob-0000002:bob')).toEqual(
      new Map([
        ['sk-alice-000001', 'alice'],
        ['sk-bob-0000002', 'bob'],
      ]),
    );
  });

  it('lets several keys map to the same owner', () => {
    expect(parseApiKeys('sk-alice-000001:alice,sk-alice-000002:alice').size).toBe(2);
  });

  it('takes the owner after the last colon, so keys may contain colons', () => {
    expect(parseApiKeys('user:pa55:word-xyz:team.a@example')).toEqual(new Map([['user:pa55:word-xyz', 'team.a@example']]));
  });

  it('ignores empty entries and surrounding whitespace', () => {
    expect(parseApiKeys(' ,sk-alice-000001:alice,, ')).toEqual(new Map([['sk-alice-000001', 'alice']]));
  });

  it('accepts a key of exactly 8 characters', () => {
    expect(parseApiKeys('12345678:alice').get('12345678')).toBe('alice');
  });

  /** Asserts an API_KEYS error and that its message leaks none of the given secrets. */
  function expectKeysRefused(raw: string, secrets: string[], problem: RegExp): void {
    const error = configError(() => parseApiKeys(raw));
    expect(error.variable).toBe('API_KEYS');
    expect(error.message).toMatch(problem);
    for (const secret of secrets) expect(error.message).not.toContain(secret);
  }

  it('refuses an entry without an owner, without echoing the key', () => {
    expectKeysRefused('sk-live-secret-value', ['sk-live-secret-value', 'secret'], /entry 1 is not a key:owner pair/);
    expectKeysRefused('sk-live-secret-value:', ['sk-live-secret-value', 'secret'], /entry 1/);
  });

  it('refuses an entry without a key', () => {
    expectKeysRefused(':alice', [], /entry 1 is not a key:owner pair/);
  });

  it('refuses a key shorter than 8 characters, without echoing it', () => {
    expectKeysRefused('sk-alice-000001:alice,s3cr3t7:bob', ['s3cr3t7'], /entry 2 has a key shorter than 8/);
  });

  it('refuses a key no Authorization header could carry, without echoing it', () => {
    expectKeysRefused('sk-with space-secret:alice', ['with space', 'secret'], /entry 1 has a key with whitespace or non-ASCII/);
    expectKeysRefused('sk-ключ-secret-1:alice', ['ключ', 'secret'], /entry 1 has a key with whitespace or non-ASCII/);
    expectKeysRefused(`sk-${'x'.repeat(1022)}:alice`, ['xxxxxxxx'], /entry 1 has a key longer than 1024/);
  });

  it('refuses a repeated key, without echoing it', () => {
    expectKeysRefused('sk-dup-secret-1:alice,sk-dup-secret-1:bob', ['sk-dup-secret-1', 'dup-secret'], /entry 2 repeats a key/);
  });

  it.each([
    ['a space', 'alice smith'],
    ['a slash', 'team/alice'],
    ['a leading dot', '.alice'],
    ['129 characters', 'a'.repeat(129)],
  ])('refuses an owner with %s', (_case, owner) => {
    expectKeysRefused(`sk-alice-000001:${owner}`, ['sk-alice-000001'], /entry 1 has an invalid owner/);
  });

  it('does not echo the part after the last colon when it is really the tail of a key', () => {
    // A key containing a colon, with the ":owner" forgotten: what looks like the owner is secret.
    expectKeysRefused('sk-proj-abc:Zm9v/YmFy+c2VjcmV0', ['Zm9v/YmFy+c2VjcmV0', 'sk-proj-abc'], /entry 1 has an invalid owner/);
  });

  it('refuses a list with no entries', () => {
    expectKeysRefused('', [], /at least one/);
    expectKeysRefused(' , ,', [], /at least one/);
  });
});
