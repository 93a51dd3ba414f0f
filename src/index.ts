/**
 * files-api as a library: `import { FilesModule, FilesService } from 'files-api'`.
 * Everything a host application needs is exported here; other paths are internal.
 */
export { FilesModule, filesServiceToken, InjectFilesService } from './files/files.module';
export type { FilesModuleAsyncOptions, FilesModuleDefinition } from './files/files.module';
export { FILES_DEFAULTS, FilesModuleOptions, resolveFilesOptions, S3_DEFAULTS } from './files/files.options';
export type {
  FilesJobs,
  FilesLimits,
  FilesModuleSettings,
  FilesStorageSettings,
  OwnerResolverFunction,
  S3StorageSettings,
} from './files/files.options';

export { FilesService } from './files/files.service';
export type {
  CreateFileInput,
  FileContentSource,
  FileContentStream,
  ListFilesOptions,
  OpenContentOptions,
  OwnerUsage,
} from './files/files.service';
export { FilesEvents } from './files/files.events';
export type { FileCreatedEvent, FileDeletedEvent, FileExpiredEvent, FilesEventMap, FilesEventName } from './files/files.events';
export type { FileDeleted, FileList, FileObject } from './files/file.mapper';
export { ALL_PURPOSES, PLATFORM_PURPOSES, UPLOAD_PURPOSES } from './files/file.types';
export type { FilePurpose } from './files/file.types';
export { FILES_ROUTES } from './files/files.routes';

export { ApiKeyOwnerResolver, OwnerResolver } from './files/auth/owner-resolver';
export type { Unauthenticated } from './files/auth/owner-resolver';
export { Owner, ownerOf } from './files/auth/owner';

export { FileStorage } from './files/storage/file-storage';
export type { ByteRange, IncompleteUpload, ObjectReadStream, StoredObjectInfo } from './files/storage/file-storage';
export { createFileStorage } from './files/storage/storage.factory';
export type { StorageConfig } from './config/app-config';
export type { DatabaseOptions } from './database/files-database';

export {
  ClientDisconnectedError,
  DatabaseUnavailableError,
  FilesError,
  FilesErrorCode,
  StorageUnavailableError,
} from './files/files.errors';
export { OpenAiExceptionFilter } from './common/openai-exception.filter';

export { ExpirySweeper } from './files/expiry/expiry.sweeper';
export type { SweepReport } from './files/expiry/expiry.sweeper';
export { Reconciler } from './files/reconcile/reconciler';
export type { ReconcileReport } from './files/reconcile/reconciler';
export { FilesHealth } from './files/files.health';
export { FilesMetrics } from './files/files.metrics';
export { FilesDatabase } from './database/files-database';

export { Clock, SystemClock } from './common/clock';
export { migrate, MIGRATIONS_DIR } from './database/migrator';
export type { MigrationResult } from './database/migrator';
