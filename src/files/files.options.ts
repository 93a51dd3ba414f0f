import type { StorageConfig } from '../config/app-config';
import type { DatabaseOptions } from '../database/files-database';
import type { OwnerResolver } from './auth/owner-resolver';
import type { FileStorage } from './storage/file-storage';

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

/**
 * Everything FilesModule needs from its host. The standalone service builds it from environment
 * config; an embedding application passes its own (e.g. its own OwnerResolver or FileStorage).
 */
export abstract class FilesModuleOptions {
  abstract database: DatabaseOptions;
  /** Adapter settings, or a ready FileStorage instance. */
  abstract storage: StorageConfig | FileStorage;
  abstract ownerResolver: OwnerResolver;
  abstract limits: FilesLimits;
  abstract expiry: { sweepIntervalSeconds: number; batchSize: number };
  abstract reconcile: { intervalSeconds: number; staleAfterSeconds: number };
}
