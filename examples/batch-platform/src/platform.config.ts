import type { StorageConfig } from 'files-api';

/**
 * The platform's own configuration (the DI token is this abstract class). files-api reads no
 * environment variables: the platform decides where its settings come from and hands FilesModule
 * what it needs.
 */
export abstract class PlatformConfig {
  abstract port: number;
  abstract databaseUrl: string;
  /** Where files-api keeps the bytes of users' files. */
  abstract storage: StorageConfig;
  /** Platform bearer token → platform user id (a real platform looks tokens up in its user store). */
  abstract users: Readonly<Record<string, string>>;
  /** Bytes of files (inputs and outputs) one user may hold. */
  abstract quotaBytesPerUser: number;
  abstract batches: {
    /** Lifetime of the `batch-output` files the runner writes (3600..2592000). */
    outputExpiresAfterSeconds: number;
    /** Pretend inference time per request, so a batch can be watched going through its states. */
    requestLatencyMs: number;
  };
  /** Run files-api's expiry sweep and reconciler in this process (false when another one does). */
  abstract filesJobs: boolean;
}

const DAY_SECONDS = 86_400;
const MiB = 1024 * 1024;

/** The platform's settings from its environment; throws naming the first missing or bad variable. */
export function loadPlatformConfig(env: NodeJS.ProcessEnv = process.env): PlatformConfig {
  const required = (name: string): string => {
    const value = env[name];
    if (!value) throw new Error(`${name} is required`);
    return value;
  };
  const integer = (name: string, fallback: number): number => {
    const value = env[name] === undefined || env[name] === '' ? fallback : Number(env[name]);
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer`);
    return value;
  };
  return {
    port: integer('PORT', 3000),
    databaseUrl: required('DATABASE_URL'),
    storage: {
      driver: 's3',
      endpoint: env.S3_ENDPOINT || undefined,
      region: env.S3_REGION || 'us-east-1',
      bucket: required('S3_BUCKET'),
      accessKeyId: env.S3_ACCESS_KEY_ID || undefined,
      secretAccessKey: env.S3_SECRET_ACCESS_KEY || undefined,
      forcePathStyle: env.S3_FORCE_PATH_STYLE === 'true',
      connectTimeoutMs: 5000,
      requestTimeoutMs: 30_000,
      partSizeBytes: 8 * MiB,
      queueSize: 2,
    },
    users: parseUsers(required('PLATFORM_USERS')),
    quotaBytesPerUser: integer('QUOTA_BYTES_PER_USER', 2048 * MiB),
    batches: {
      outputExpiresAfterSeconds: integer('BATCH_OUTPUT_EXPIRES_AFTER_SECONDS', 30 * DAY_SECONDS),
      requestLatencyMs: integer('BATCH_REQUEST_LATENCY_MS', 0),
    },
    filesJobs: env.FILES_JOBS !== 'false',
  };
}

/** `token:user,token:user` */
function parseUsers(value: string): Record<string, string> {
  const users: Record<string, string> = {};
  for (const pair of value.split(',')) {
    const at = pair.lastIndexOf(':');
    if (at <= 0 || at === pair.length - 1) throw new Error('PLATFORM_USERS must be token:user pairs separated by commas');
    users[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return users;
}
