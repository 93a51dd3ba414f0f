import { Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import type { Readable } from 'node:stream';
import { Clock } from '../../common/clock';
import { newFileId } from '../file-id';
import { toFileObject } from '../file.mapper';
import { UPLOAD_PURPOSES, type FilePurpose, type StoredFile } from '../file.types';
import { sanitizeFilename } from '../filename';
import { FilesError, FilesErrorCode } from '../files.errors';
import { FilesModuleOptions } from '../files.options';
import { FilesEvents } from '../files.events';
import { FilesRepository, type CommittedUpload } from '../files.repository';
import { FileStorage } from '../storage/file-storage';
import { storageKeyFor } from '../storage/storage-key';
import { MeteredStream } from './metered-stream';
import { checkEarlyFields, parseUploadFields } from './upload-fields';

export interface CommitOptions {
  purpose: FilePurpose;
  expiresAfterSeconds: number;
  /** Charge the owner's usage but do not refuse past the quota. */
  bypassQuota: boolean;
}

export interface StoreOptions extends CommitOptions {
  /** Client or host supplied; sanitized before it is stored. */
  filename: string;
}

/** Bytes of one file part, stored but not yet visible: its row is still `pending`. */
export interface ReceivedUpload {
  uuid: string;
  publicId: string;
  ownerId: string;
  filename: string;
  /** From the id: created_at is when the upload began, and list order follows it. */
  createdAt: Date;
  bytes: number;
  sha256: string;
  /** Stops the heartbeat that keeps the reconciler away from this upload. */
  stopHeartbeat: () => void;
  /** Marks the upload finished (committed or cleaned up), for the shutdown drain. Idempotent. */
  settle: () => void;
}

/** How long shutdown waits for uploads in progress to commit or clean up. */
const SHUTDOWN_DRAIN_MS = 15_000;

/**
 * The staged write behind `POST /files`: a pending row, then the bytes (streamed, metered and
 * hashed), then one transaction that charges the owner and makes the file visible. A failure at
 * any step removes what the earlier steps left; a crash leaves a pending row (and maybe bytes)
 * that the reconciler cleans up once its heartbeat stops.
 */
@Injectable()
export class FileUploadService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(FileUploadService.name);
  /** Uploads between their first query and their commit or clean-up. */
  private readonly inFlight = new Set<object>();
  private onIdle?: () => void;

  constructor(
    private readonly repository: FilesRepository,
    private readonly storage: FileStorage,
    private readonly clock: Clock,
    private readonly options: FilesModuleOptions,
    private readonly events: FilesEvents,
  ) {}

  /** Largest upload accepted for `purpose`, or for any uploadable purpose when not yet known. */
  limitFor(purpose: string | undefined): number {
    const { maxBatchFileBytes, maxFileBytes } = this.options.limits;
    const perPurpose = (p: string) => Math.min(maxFileBytes, p === 'batch' ? maxBatchFileBytes : maxFileBytes);
    return purpose === undefined ? Math.max(...UPLOAD_PURPOSES.map(perPurpose)) : perPurpose(purpose);
  }

  /**
   * Streams one file part of `POST /files` into storage under a new pending row. `fieldsSoFar`
   * are the form fields that arrived before the file: a bad one among them refuses the upload
   * before any byte is stored. Rejects with the source's own error if the source fails (size
   * limit, disconnect).
   */
  async receive(ownerId: string, source: Readable, clientFilename: string | undefined, fieldsSoFar: Record<string, unknown>): Promise<ReceivedUpload> {
    return this.receiveAs(ownerId, source, clientFilename, checkEarlyFields(fieldsSoFar), { bypassQuota: false, drainOnRefusal: true });
  }

  /**
   * Validates the complete form and commits the upload: charged and visible in one transaction.
   * On any failure the stored bytes and the pending row are removed before the error propagates.
   */
  async complete(upload: ReceivedUpload, fields: Record<string, unknown>): Promise<StoredFile> {
    let parsed: ReturnType<typeof parseUploadFields>;
    try {
      parsed = parseUploadFields(fields);
    } catch (error) {
      await this.discard(upload);
      throw error;
    }
    return this.commit(upload, { ...parsed, bypassQuota: false });
  }

  /**
   * The whole staged write for code in the host: streams `source` into storage and commits it,
   * or leaves nothing behind. Any purpose is allowed, size limits apply; `bypassQuota` still
   * charges the owner's usage but lets it go past the quota (for platform writes such as batch
   * outputs, which must not fail because the user's storage is full).
   */
  async store(ownerId: string, source: Readable, options: StoreOptions): Promise<StoredFile> {
    const upload = await this.receiveAs(ownerId, source, options.filename, options.purpose, {
      bypassQuota: options.bypassQuota,
      drainOnRefusal: false,
    });
    return this.commit(upload, options);
  }

  /**
   * Lets uploads in progress commit or clean up before the module's pool closes (a bounded
   * wait): an application closing mid-upload leaves no pending row behind if it can help it.
   */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.inFlight.size === 0) return;
    this.logger.log(`waiting for ${this.inFlight.size} upload(s) in progress`);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => (this.onIdle = resolve)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_DRAIN_MS))),
    ]);
    clearTimeout(timer);
    if (this.inFlight.size > 0) this.logger.warn(`${this.inFlight.size} upload(s) still running at shutdown; the reconciler will clean up`);
  }

  private begin(): () => void {
    const token = {};
    this.inFlight.add(token);
    return () => {
      if (!this.inFlight.delete(token)) return;
      if (this.inFlight.size === 0) this.onIdle?.();
    };
  }

  private async receiveAs(
    ownerId: string,
    source: Readable,
    clientFilename: string | undefined,
    purpose: FilePurpose | undefined,
    mode: { bypassQuota: boolean; drainOnRefusal: boolean },
  ): Promise<ReceivedUpload> {
    const settle = this.begin();
    try {
      return await this.receiveTracked(ownerId, source, clientFilename, purpose, mode, settle);
    } catch (error) {
      settle();
      throw error;
    }
  }

  private async receiveTracked(
    ownerId: string,
    source: Readable,
    clientFilename: string | undefined,
    purpose: FilePurpose | undefined,
    { bypassQuota, drainOnRefusal }: { bypassQuota: boolean; drainOnRefusal: boolean },
    settle: () => void,
  ): Promise<ReceivedUpload> {
    const sizeLimit = this.limitFor(purpose);
    const now = this.clock.now();
    const remaining = bypassQuota
      ? Number.POSITIVE_INFINITY
      : this.options.limits.quotaBytesPerOwner - (await this.repository.liveUsage(ownerId, now));
    const meter =
      remaining < sizeLimit
        ? new MeteredStream(Math.max(0, remaining), () => quotaExceeded(this.options.limits.quotaBytesPerOwner))
        : new MeteredStream(sizeLimit, () => tooLarge(sizeLimit));

    const id = newFileId(now.getTime());
    const filename = sanitizeFilename(clientFilename);
    await this.repository.createPending({ uuid: id.uuid, ownerId, filename, createdAt: new Date(id.timestampMs), now });
    const stopHeartbeat = this.startHeartbeat(id.uuid);

    const key = storageKeyFor(id.publicId);
    // Piped by hand rather than with pipeline(): on a limit error the rest of a form's part must
    // keep flowing (and be discarded) so the form parser can finish and the client gets its
    // answer. A host's own stream is stopped instead (destroyed without an error, so nobody has
    // to listen for one).
    const onSourceError = (error: Error) => meter.destroy(error);
    source.once('error', onSourceError);
    meter.once('error', () => {
      source.unpipe(meter);
      if (drainOnRefusal) source.resume();
      else source.destroy();
    });
    source.pipe(meter);
    try {
      await this.storage.put(key, meter);
    } catch (error) {
      stopHeartbeat();
      source.off('error', onSourceError);
      // A failed put leaves no object (the port's contract; a backend-side partial write such as
      // an open multipart upload is the reconciler's), so only the row needs removing, and that
      // works even while storage is down.
      await this.forgetPending(id.uuid);
      throw error;
    }
    source.off('error', onSourceError);
    return {
      uuid: id.uuid,
      publicId: id.publicId,
      ownerId,
      filename,
      createdAt: new Date(id.timestampMs),
      bytes: meter.bytes,
      sha256: meter.sha256,
      stopHeartbeat,
      settle,
    };
  }

  /** Charges and publishes a received upload, or removes it (bytes, then row) and rethrows. */
  private async commit(upload: ReceivedUpload, options: CommitOptions): Promise<StoredFile> {
    let committed: CommittedUpload;
    try {
      if (upload.bytes === 0) {
        throw new FilesError(FilesErrorCode.EmptyFile, 'The file is empty. Upload a file with content.', 'file');
      }
      const limit = this.limitFor(options.purpose);
      if (upload.bytes > limit) throw tooLarge(limit);
      committed = await this.repository.commitUpload({
        uuid: upload.uuid,
        ownerId: upload.ownerId,
        purpose: options.purpose,
        filename: upload.filename,
        bytes: upload.bytes,
        sha256: upload.sha256,
        expiresAt: new Date(upload.createdAt.getTime() + options.expiresAfterSeconds * 1000),
        now: this.clock.now(),
        quotaBytes: options.bypassQuota ? Number.MAX_SAFE_INTEGER : this.options.limits.quotaBytesPerOwner,
      });
      upload.stopHeartbeat();
    } catch (error) {
      await this.discard(upload);
      throw error;
    }
    upload.settle();
    for (const gone of committed.expired) this.events.emit('file.expired', { ownerId: gone.ownerId, fileId: gone.publicId });
    this.events.emit('file.created', { ownerId: upload.ownerId, file: toFileObject(committed.file) });
    return committed.file;
  }

  /** Removes a received but uncommitted upload (bytes, then row). Never throws. */
  async discard(upload: ReceivedUpload): Promise<void> {
    upload.stopHeartbeat();
    try {
      await this.cleanUp(upload.uuid, storageKeyFor(upload.publicId));
    } finally {
      upload.settle();
    }
  }

  private async cleanUp(uuid: string, key: string): Promise<void> {
    try {
      await this.storage.delete(key);
    } catch (error) {
      // The row stays pending; once its heartbeat is stale the reconciler removes bytes and row.
      this.logger.warn(`could not delete bytes of failed upload ${key}; the reconciler will: ${(error as Error).message}`);
      return;
    }
    await this.forgetPending(uuid);
  }

  private async forgetPending(uuid: string): Promise<void> {
    try {
      await this.repository.deletePending(uuid);
    } catch (error) {
      this.logger.warn(`could not remove pending row ${uuid}; the reconciler will: ${(error as Error).message}`);
    }
  }

  private startHeartbeat(uuid: string): () => void {
    const everyMs = Math.max(250, (this.options.reconcile.staleAfterSeconds * 1000) / 4);
    const timer = setInterval(() => {
      this.repository.touchPending(uuid, this.clock.now()).catch((error: Error) => {
        this.logger.warn(`heartbeat for pending upload ${uuid} failed: ${error.message}`);
      });
    }, everyMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}

function tooLarge(limit: number): FilesError {
  return new FilesError(
    FilesErrorCode.FileTooLarge,
    `The file exceeds the maximum allowed size of ${limit} bytes for this purpose.`,
    'file',
  );
}

function quotaExceeded(quota: number): FilesError {
  return new FilesError(
    FilesErrorCode.QuotaExceeded,
    `Storing this file would exceed your storage quota of ${quota} bytes. Delete files you no longer need and retry.`,
    'file',
  );
}
