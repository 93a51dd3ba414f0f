import type { Request } from 'express';
import type { Clock } from '../common/clock';
import { CONFIG_DEFAULTS, type StorageConfig } from '../config/app-config';
import type { DatabaseOptions } from '../database/files-database';
import { ApiKeyOwnerResolver, OwnerResolver, type Unauthenticated } from './auth/owner-resolver';
import { FileStorage } from './storage/file-storage';
import { assertKeyPrefix } from './storage/prefixed-file-storage';

export interface FilesLimits {
  /** Largest file with purpose `batch`. */
  maxBatchFileBytes: number;
  /** Largest file of any purpose. */
  maxFileBytes: number;
  /** Total bytes of live files (every purpose) one owner may hold. */
  quotaBytesPerOwner: number;
  /** Uploads in progress at once on this instance. */
  maxConcurrentUploads: number;
  /** Uploads in progress at once for one owner on this instance. */
  maxConcurrentUploadsPerOwner: number;
}

export interface FilesJobs {
  /** Run the expiry sweep on its interval in this process. */
  expiry: boolean;
  /** Run the reconciler on its interval in this process. */
  reconcile: boolean;
}

/**
 * A host's owner mapping as a plain function: the owner id, or null/undefined when the request
 * carries no acceptable credentials (answered with 401).
 */
export type OwnerResolverFunction = (request: Request) => string | null | undefined | Promise<string | null | undefined>;

/**
 * Everything FilesModule needs, fully resolved: what its providers inject. The standalone
 * service builds it from environment config; a host passes FilesModuleSettings, whose gaps are
 * filled with the defaults below.
 */
export abstract class FilesModuleOptions {
  abstract database: DatabaseOptions;
  /** Adapter settings, or a ready FileStorage instance. */
  abstract storage: StorageConfig | FileStorage;
  abstract ownerResolver: OwnerResolver;
  abstract limits: FilesLimits;
  abstract expiry: { sweepIntervalSeconds: number; batchSize: number };
  abstract reconcile: { intervalSeconds: number; staleAfterSeconds: number };
  /** Which background jobs run in this process; both when absent. */
  abstract jobs?: Partial<FilesJobs>;
  /** Time source for expiry and staleness; the system clock when absent. */
  abstract clock?: Clock;
  /** Prefix of every key this instance writes (`tenant-a/`), for a bucket shared with others. */
  abstract storageKeyPrefix?: string;
}

type S3Config = Extract<StorageConfig, { driver: 's3' }>;

/** S3 settings from a host: the bucket, the rest defaulted as for the standalone service. */
export type S3StorageSettings = Pick<S3Config, 'driver' | 'bucket'> & Partial<Omit<S3Config, 'driver' | 'bucket'>>;

/** Storage for an instance: S3 or filesystem settings, or a ready FileStorage (the host owns it). */
export type FilesStorageSettings = FileStorage | Extract<StorageConfig, { driver: 'fs' }> | S3StorageSettings;

/** What a host passes to `FilesModule.forRoot`/`forRootAsync`: only database and storage are required. */
export interface FilesModuleSettings {
  /** PostgreSQL connection; FilesModule owns its pool. Apply the migrations first (`migrate(url)` from the package root). */
  database: Pick<DatabaseOptions, 'url'> & Partial<DatabaseOptions>;
  storage: FilesStorageSettings;
  /**
   * Who is calling: an OwnerResolver instance (inject your own provider through forRootAsync) or
   * a function. Default: `Authorization: Bearer` keys from `apiKeys`.
   */
  ownerResolver?: OwnerResolver | OwnerResolverFunction;
  /** API key → owner, for the default resolver. */
  apiKeys?: ReadonlyMap<string, string> | Record<string, string>;
  limits?: Partial<FilesLimits>;
  expiry?: Partial<FilesModuleOptions['expiry']>;
  reconcile?: Partial<FilesModuleOptions['reconcile']>;
  /** false: no background jobs in this process (another process runs them); default true. */
  jobs?: boolean | Partial<FilesJobs>;
  /** Time source (tests of a host move it forward to expire files); default the system clock. */
  clock?: Clock;
  /**
   * Keeps this instance's objects under a prefix (`archive/` → `archive/files/<id>`). Required
   * for instances (or other applications) sharing a bucket or directory: each instance's
   * reconciler deletes objects under its prefix that its own database does not know.
   */
  storageKeyPrefix?: string;
}

const MiB = 1024 * 1024;

/** The documented defaults (the same as the standalone service's). */
export const FILES_DEFAULTS = {
  database: { poolMax: 10, connectTimeoutMs: 5000, statementTimeoutMs: 15_000 },
  limits: {
    maxBatchFileBytes: 200 * MiB,
    maxFileBytes: 512 * MiB,
    quotaBytesPerOwner: 2048 * MiB,
    maxConcurrentUploads: 64,
    maxConcurrentUploadsPerOwner: 8,
  },
  expiry: { sweepIntervalSeconds: 60, batchSize: 1000 },
  reconcile: { intervalSeconds: 600, staleAfterSeconds: 120 },
} as const satisfies Pick<FilesModuleOptions, 'limits' | 'expiry' | 'reconcile'> & { database: Omit<DatabaseOptions, 'url'> };

/** Fills a host's settings with defaults and turns a resolver function into the port. */
export function resolveFilesOptions(settings: FilesModuleSettings): FilesModuleOptions {
  if (!settings?.database?.url) throw new Error('FilesModule: database.url is required');
  if (!settings.storage) throw new Error('FilesModule: storage is required');
  const jobs = settings.jobs ?? true;
  const resolved: FilesModuleOptions = {
    database: { ...FILES_DEFAULTS.database, ...settings.database },
    storage: resolveStorage(settings.storage),
    ownerResolver: toOwnerResolver(settings),
    limits: { ...FILES_DEFAULTS.limits, ...settings.limits },
    expiry: { ...FILES_DEFAULTS.expiry, ...settings.expiry },
    reconcile: { ...FILES_DEFAULTS.reconcile, ...settings.reconcile },
    jobs: typeof jobs === 'boolean' ? { expiry: jobs, reconcile: jobs } : { expiry: true, reconcile: true, ...jobs },
    clock: settings.clock,
    storageKeyPrefix: settings.storageKeyPrefix,
  };
  validate(resolved);
  return resolved;
}

/** S3 defaults: the standalone service's (its environment defaults). */
export const S3_DEFAULTS: Omit<S3Config, 'driver' | 'bucket'> = {
  endpoint: undefined,
  region: CONFIG_DEFAULTS.S3_REGION,
  accessKeyId: undefined,
  secretAccessKey: undefined,
  forcePathStyle: (CONFIG_DEFAULTS.S3_FORCE_PATH_STYLE as string) === 'true',
  connectTimeoutMs: Number(CONFIG_DEFAULTS.S3_CONNECT_TIMEOUT_MS),
  requestTimeoutMs: Number(CONFIG_DEFAULTS.S3_REQUEST_TIMEOUT_MS),
  partSizeBytes: Number(CONFIG_DEFAULTS.S3_UPLOAD_PART_SIZE_BYTES),
  queueSize: Number(CONFIG_DEFAULTS.S3_UPLOAD_QUEUE_SIZE),
};

function resolveStorage(storage: FilesStorageSettings): StorageConfig | FileStorage {
  if (storage instanceof FileStorage || storage.driver !== 's3') return storage;
  if (typeof storage.bucket !== 'string' || storage.bucket === '') throw new Error('FilesModule: storage.bucket is required for the s3 driver');
  const resolved: S3Config = { ...S3_DEFAULTS, ...dropUndefined(storage), driver: 's3', bucket: storage.bucket };
  const bounds: [keyof S3Config, number, number][] = [
    ['connectTimeoutMs', 100, Number.MAX_SAFE_INTEGER],
    ['requestTimeoutMs', 100, Number.MAX_SAFE_INTEGER],
    // S3 refuses parts under 5 MiB (except the last) and allows at most 10,000 parts.
    ['partSizeBytes', 5 * MiB, 5 * 1024 * MiB],
    ['queueSize', 1, 16],
  ];
  for (const [field, min, max] of bounds) checkInteger(`storage.${field}`, resolved[field], min, max);
  if ((resolved.accessKeyId === undefined) !== (resolved.secretAccessKey === undefined)) {
    throw new Error('FilesModule: storage.accessKeyId and storage.secretAccessKey must be given together (or neither, for the SDK default chain)');
  }
  return resolved;
}

function dropUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The same bounds the standalone service puts on its environment variables. */
const BOUNDS: [group: 'database' | 'limits' | 'expiry' | 'reconcile', field: string, min: number, max: number][] = [
  ['database', 'poolMax', 1, 1000],
  ['database', 'connectTimeoutMs', 100, Number.MAX_SAFE_INTEGER],
  ['database', 'statementTimeoutMs', 100, Number.MAX_SAFE_INTEGER],
  ['limits', 'maxBatchFileBytes', 1, Number.MAX_SAFE_INTEGER],
  ['limits', 'maxFileBytes', 1, Number.MAX_SAFE_INTEGER],
  ['limits', 'quotaBytesPerOwner', 1, Number.MAX_SAFE_INTEGER],
  ['limits', 'maxConcurrentUploads', 1, 100_000],
  ['limits', 'maxConcurrentUploadsPerOwner', 1, 100_000],
  ['expiry', 'sweepIntervalSeconds', 0, 86_400],
  ['expiry', 'batchSize', 1, 10_000],
  ['reconcile', 'intervalSeconds', 0, 7 * 86_400],
  ['reconcile', 'staleAfterSeconds', 1, 7 * 86_400],
];

function validate(options: FilesModuleOptions): void {
  if (options.storageKeyPrefix !== undefined) assertKeyPrefix(options.storageKeyPrefix, 'FilesModule: storageKeyPrefix');
  for (const [group, field, min, max] of BOUNDS) {
    checkInteger(`${group}.${field}`, (options[group] as unknown as Record<string, unknown>)[field], min, max);
  }
}

function checkInteger(setting: string, value: unknown, min: number, max: number): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new Error(`FilesModule: ${setting} must be an integer between ${min} and ${max}, got ${String(value)}`);
  }
}

function toOwnerResolver(settings: FilesModuleSettings): OwnerResolver {
  const resolver = settings.ownerResolver;
  if (resolver instanceof OwnerResolver) return resolver;
  if (typeof resolver === 'function') {
    if (/^class[\s{]/.test(Function.prototype.toString.call(resolver))) {
      throw new Error('FilesModule: ownerResolver is a class; pass an instance (or inject your provider with forRootAsync)');
    }
    return new FunctionOwnerResolver(resolver);
  }
  if (resolver !== undefined && typeof (resolver as OwnerResolver).resolve === 'function') {
    // An OwnerResolver from another copy of this package (e.g. a host with two installs).
    return resolver as OwnerResolver;
  }
  const keys = settings.apiKeys ?? new Map<string, string>();
  return new ApiKeyOwnerResolver(keys instanceof Map ? keys : new Map(Object.entries(keys)));
}

/** Adapts a host's function to the port; "no owner" is 401, as missing or invalid credentials. */
class FunctionOwnerResolver extends OwnerResolver {
  constructor(private readonly fn: OwnerResolverFunction) {
    super();
  }

  async resolve(request: Request): Promise<string | Unauthenticated> {
    const owner = await this.fn(request);
    if (typeof owner === 'string' && owner !== '') return owner;
    return { reason: request.headers.authorization === undefined ? 'missing' : 'invalid' };
  }
}
