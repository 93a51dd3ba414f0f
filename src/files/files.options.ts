import type { Request } from 'express';
import type { Clock } from '../common/clock';
import type { StorageConfig } from '../config/app-config';
import type { DatabaseOptions } from '../database/files-database';
import { ApiKeyOwnerResolver, OwnerResolver, type Unauthenticated } from './auth/owner-resolver';
import { FileStorage } from './storage/file-storage';

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
}

/** What a host passes to `FilesModule.forRoot`/`forRootAsync`: only database and storage are required. */
export interface FilesModuleSettings {
  /** PostgreSQL connection; FilesModule owns its pool. Apply the migrations first (`migrate(url)` from the package root). */
  database: Pick<DatabaseOptions, 'url'> & Partial<DatabaseOptions>;
  storage: StorageConfig | FileStorage;
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
  return {
    database: { ...FILES_DEFAULTS.database, ...settings.database },
    storage: settings.storage,
    ownerResolver: toOwnerResolver(settings),
    limits: { ...FILES_DEFAULTS.limits, ...settings.limits },
    expiry: { ...FILES_DEFAULTS.expiry, ...settings.expiry },
    reconcile: { ...FILES_DEFAULTS.reconcile, ...settings.reconcile },
    jobs: typeof jobs === 'boolean' ? { expiry: jobs, reconcile: jobs } : { expiry: true, reconcile: true, ...jobs },
    clock: settings.clock,
  };
}

function toOwnerResolver(settings: FilesModuleSettings): OwnerResolver {
  const resolver = settings.ownerResolver;
  if (resolver instanceof OwnerResolver) return resolver;
  if (typeof resolver === 'function') return new FunctionOwnerResolver(resolver);
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
