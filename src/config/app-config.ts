/**
 * The one place that reads the environment. `loadConfig` validates every variable and throws a
 * ConfigError naming the first bad one, so the service never half-starts on a typo.
 */

export type StorageConfig =
  | {
      driver: 's3';
      endpoint: string | undefined;
      region: string;
      bucket: string;
      accessKeyId: string | undefined;
      secretAccessKey: string | undefined;
      forcePathStyle: boolean;
      connectTimeoutMs: number;
      requestTimeoutMs: number;
      /** Multipart part size; memory per upload is about partSizeBytes × (queueSize + 2). */
      partSizeBytes: number;
      /** Parts uploaded in parallel per file. */
      queueSize: number;
    }
  | { driver: 'fs'; dir: string };

export interface AppConfig {
  host: string;
  port: number;
  database: {
    url: string;
    poolMax: number;
    connectTimeoutMs: number;
    statementTimeoutMs: number;
  };
  storage: StorageConfig;
  /** API key → owner id, from API_KEYS; may be empty (then only managed keys authenticate). */
  apiKeys: ReadonlyMap<string, string>;
  /**
   * How long a managed key found in the database is trusted without asking again; 0 = ask on
   * every request. A revoked key keeps working for at most this long on each instance.
   */
  apiKeyCacheSeconds: number;
  limits: {
    maxBatchFileBytes: number;
    maxFileBytes: number;
    quotaBytesPerOwner: number;
    maxConcurrentUploads: number;
    maxConcurrentUploadsPerOwner: number;
  };
  expiry: {
    /** 0 switches the sweep off. */
    sweepIntervalSeconds: number;
    batchSize: number;
  };
  reconcile: {
    /** 0 switches the reconciler off. */
    intervalSeconds: number;
    /** A pending upload whose heartbeat is older than this is presumed dead. */
    staleAfterSeconds: number;
  };
  shutdownGraceMs: number;
  log: { level: LogLevelName; format: 'json' | 'text' };
}

export type LogLevelName = 'error' | 'warn' | 'log' | 'debug' | 'verbose';

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`Invalid configuration: ${variable} ${problem}`);
    this.name = 'ConfigError';
  }
}

const MiB = 1024 * 1024;

/** Every variable the service reads, with its default ('' means required or optional without one). */
export const CONFIG_DEFAULTS = {
  HOST: '0.0.0.0',
  PORT: '3000',
  DATABASE_URL: '',
  DATABASE_POOL_MAX: '10',
  DATABASE_CONNECT_TIMEOUT_MS: '5000',
  DATABASE_STATEMENT_TIMEOUT_MS: '15000',
  STORAGE_DRIVER: 'fs',
  FS_STORAGE_DIR: './data/files',
  S3_ENDPOINT: '',
  S3_REGION: 'us-east-1',
  S3_BUCKET: '',
  S3_ACCESS_KEY_ID: '',
  S3_SECRET_ACCESS_KEY: '',
  S3_FORCE_PATH_STYLE: 'false',
  S3_CONNECT_TIMEOUT_MS: '5000',
  S3_REQUEST_TIMEOUT_MS: '30000',
  S3_UPLOAD_PART_SIZE_BYTES: String(8 * MiB),
  S3_UPLOAD_QUEUE_SIZE: '2',
  API_KEYS: '',
  API_KEY_CACHE_SECONDS: '5',
  FILES_MAX_BATCH_FILE_BYTES: String(200 * MiB),
  FILES_MAX_FILE_BYTES: String(512 * MiB),
  FILES_QUOTA_BYTES_PER_OWNER: String(2048 * MiB),
  FILES_MAX_CONCURRENT_UPLOADS: '64',
  FILES_MAX_CONCURRENT_UPLOADS_PER_OWNER: '8',
  FILES_EXPIRY_SWEEP_INTERVAL_SECONDS: '60',
  FILES_EXPIRY_SWEEP_BATCH_SIZE: '1000',
  FILES_RECONCILE_INTERVAL_SECONDS: '600',
  FILES_PENDING_STALE_SECONDS: '120',
  SHUTDOWN_GRACE_SECONDS: '25',
  LOG_LEVEL: 'log',
  LOG_FORMAT: 'json',
} as const;

export type ConfigVariable = keyof typeof CONFIG_DEFAULTS;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const read = (name: ConfigVariable): string => {
    const value = env[name];
    return value === undefined || value.trim() === '' ? CONFIG_DEFAULTS[name] : value.trim();
  };
  const int = (name: ConfigVariable, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const raw = read(name);
    if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
    const value = Number(raw);
    if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
    return value;
  };
  const bool = (name: ConfigVariable): boolean => {
    const raw = read(name).toLowerCase();
    if (['true', '1', 'yes'].includes(raw)) return true;
    if (['false', '0', 'no'].includes(raw)) return false;
    throw new ConfigError(name, `must be true or false, got "${raw}"`);
  };
  const required = (name: ConfigVariable, why = ''): string => {
    const value = read(name);
    if (value === '') throw new ConfigError(name, `is required${why}`);
    return value;
  };

  const databaseUrl = required('DATABASE_URL');
  if (!/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL', 'must be a postgres:// or postgresql:// URL');
  }

  const limits = {
    maxBatchFileBytes: int('FILES_MAX_BATCH_FILE_BYTES', 1),
    maxFileBytes: int('FILES_MAX_FILE_BYTES', 1),
    quotaBytesPerOwner: int('FILES_QUOTA_BYTES_PER_OWNER', 1),
    maxConcurrentUploads: int('FILES_MAX_CONCURRENT_UPLOADS', 1, 100_000),
    maxConcurrentUploadsPerOwner: int('FILES_MAX_CONCURRENT_UPLOADS_PER_OWNER', 1, 100_000),
  };
  if (limits.maxBatchFileBytes > limits.maxFileBytes) {
    throw new ConfigError('FILES_MAX_BATCH_FILE_BYTES', `must not exceed FILES_MAX_FILE_BYTES (${limits.maxFileBytes})`);
  }

  const logLevel = read('LOG_LEVEL');
  if (!['error', 'warn', 'log', 'debug', 'verbose'].includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of error, warn, log, debug, verbose; got "${logLevel}"`);
  }
  const logFormat = read('LOG_FORMAT');
  if (logFormat !== 'json' && logFormat !== 'text') {
    throw new ConfigError('LOG_FORMAT', `must be json or text, got "${logFormat}"`);
  }

  return {
    host: read('HOST'),
    port: int('PORT', 0, 65535),
    database: {
      url: databaseUrl,
      poolMax: int('DATABASE_POOL_MAX', 1, 1000),
      connectTimeoutMs: int('DATABASE_CONNECT_TIMEOUT_MS', 100),
      statementTimeoutMs: int('DATABASE_STATEMENT_TIMEOUT_MS', 100),
    },
    storage: loadStorage(read, required, bool, int),
    // Unset or empty: no static keys (managed keys only). Set: every entry must be valid.
    apiKeys: read('API_KEYS') === '' ? new Map() : parseApiKeys(read('API_KEYS')),
    apiKeyCacheSeconds: int('API_KEY_CACHE_SECONDS', 0, 3600),
    limits,
    expiry: {
      sweepIntervalSeconds: int('FILES_EXPIRY_SWEEP_INTERVAL_SECONDS', 0, 86_400),
      batchSize: int('FILES_EXPIRY_SWEEP_BATCH_SIZE', 1, 10_000),
    },
    reconcile: {
      intervalSeconds: int('FILES_RECONCILE_INTERVAL_SECONDS', 0, 7 * 86_400),
      staleAfterSeconds: int('FILES_PENDING_STALE_SECONDS', 1, 7 * 86_400),
    },
    shutdownGraceMs: int('SHUTDOWN_GRACE_SECONDS', 0, 3600) * 1000,
    log: { level: logLevel as LogLevelName, format: logFormat },
  };
}

function loadStorage(
  read: (name: ConfigVariable) => string,
  required: (name: ConfigVariable, why?: string) => string,
  bool: (name: ConfigVariable) => boolean,
  int: (name: ConfigVariable, min: number, max?: number) => number,
): StorageConfig {
  const driver = read('STORAGE_DRIVER');
  if (driver === 'fs') return { driver, dir: read('FS_STORAGE_DIR') };
  if (driver !== 's3') throw new ConfigError('STORAGE_DRIVER', `must be "s3" or "fs", got "${driver}"`);

  const endpoint = read('S3_ENDPOINT') || undefined;
  if (endpoint !== undefined && !/^https?:\/\/[^\s/]+(\/\S*)?$/.test(endpoint)) {
    throw new ConfigError('S3_ENDPOINT', `must be an http:// or https:// URL, got "${endpoint}"`);
  }
  const bucket = required('S3_BUCKET', ' when STORAGE_DRIVER=s3');
  // S3 bucket naming rules (lowercase DNS-style); Swift and MinIO accept the same set.
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new ConfigError('S3_BUCKET', `is not a valid bucket name: "${bucket}"`);
  }
  const accessKeyId = read('S3_ACCESS_KEY_ID') || undefined;
  const secretAccessKey = read('S3_SECRET_ACCESS_KEY') || undefined;
  // Both or neither: neither means the SDK's default credential chain (instance roles, etc.).
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new ConfigError(
      accessKeyId === undefined ? 'S3_ACCESS_KEY_ID' : 'S3_SECRET_ACCESS_KEY',
      'must be set together with its pair (S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY)',
    );
  }
  return {
    driver,
    endpoint,
    region: read('S3_REGION'),
    bucket,
    accessKeyId,
    secretAccessKey,
    forcePathStyle: bool('S3_FORCE_PATH_STYLE'),
    connectTimeoutMs: int('S3_CONNECT_TIMEOUT_MS', 100),
    requestTimeoutMs: int('S3_REQUEST_TIMEOUT_MS', 100),
    // S3 refuses parts under 5 MiB (except the last) and allows at most 10,000 parts.
    partSizeBytes: int('S3_UPLOAD_PART_SIZE_BYTES', 5 * MiB, 5 * 1024 * MiB),
    queueSize: int('S3_UPLOAD_QUEUE_SIZE', 1, 16),
  };
}

/**
 * An owner id: letters, digits, . _ @ -, starting with a letter or digit, at most 128 characters.
 * The api_keys table enforces the same pattern with a CHECK constraint.
 */
export const OWNER_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

/** `key:owner,key:owner`. The owner follows the last colon, so keys may contain colons. */
export function parseApiKeys(raw: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const entry of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const colon = entry.lastIndexOf(':');
    const key = colon > 0 ? entry.slice(0, colon) : '';
    const owner = colon > 0 ? entry.slice(colon + 1) : '';
    // Never echo key material in the message: name the position instead.
    const position = `entry ${keys.size + 1}`;
    if (key === '' || owner === '') throw new ConfigError('API_KEYS', `${position} is not a key:owner pair`);
    if (key.length < 8) throw new ConfigError('API_KEYS', `${position} has a key shorter than 8 characters`);
    // What a Bearer header can carry (see ApiKeyOwnerResolver); any other key could never match.
    if (key.length > 1024) throw new ConfigError('API_KEYS', `${position} has a key longer than 1024 characters`);
    if (!/^[\x21-\x7e]+$/.test(key)) {
      throw new ConfigError('API_KEYS', `${position} has a key with whitespace or non-ASCII characters`);
    }
    if (!OWNER_PATTERN.test(owner)) {
      // Not echoed either: when a key containing ':' lacks its owner, this "owner" is the key's tail.
      throw new ConfigError('API_KEYS', `${position} has an invalid owner (letters, digits, . _ @ -; at most 128)`);
    }
    if (keys.has(key)) throw new ConfigError('API_KEYS', `${position} repeats a key`);
    keys.set(key, owner);
  }
  if (keys.size === 0) throw new ConfigError('API_KEYS', 'must list at least one key:owner pair, or be empty (managed keys only)');
  return keys;
}
