import { Injectable, Logger } from '@nestjs/common';
import { Readable } from 'node:stream';
import { Clock } from '../common/clock';
import type { FileContent } from './download';
import { parseRange } from './download';
import { parseFileId } from './file-id';
import { toFileList, toFileObject, type FileDeleted, type FileList, type FileObject } from './file.mapper';
import { PLATFORM_PURPOSES, UPLOAD_PURPOSES, type FilePurpose, type ListQuery, type StoredFile } from './file.types';
import { FilesError, FilesErrorCode } from './files.errors';
import { FilesEvents, type FilesEventMap, type FilesEventName } from './files.events';
import { FilesModuleOptions } from './files.options';
import { FilesRepository } from './files.repository';
import { parseListQuery } from './list-query';
import { FileStorage, type ByteRange } from './storage/file-storage';
import { storageKeyFor } from './storage/storage-key';
import type { UploadedFilePart } from './upload/file-storage.engine';
import { FileUploadService } from './upload/file-upload.service';
import { DEFAULT_EXPIRES_AFTER_SECONDS, MAX_EXPIRES_AFTER_SECONDS, MIN_EXPIRES_AFTER_SECONDS } from './upload/upload-fields';

/** Purposes `createFile` writes: what users upload and what the platform writes back. */
const WRITABLE_PURPOSES: readonly FilePurpose[] = [...UPLOAD_PURPOSES, ...PLATFORM_PURPOSES];

/** Content for `FilesService.createFile`: a stream, any async iterable of chunks, or bytes in hand. */
export type FileContentSource = Readable | AsyncIterable<Uint8Array | string> | Uint8Array | string;

export interface CreateFileInput {
  ownerId: string;
  /** `batch` (what users upload) or `batch-output` (what the platform writes back). */
  purpose: FilePurpose;
  /** Shown to the owner; sanitized like an uploaded filename. */
  filename: string;
  content: FileContentSource;
  /** Seconds from creation until the file expires: 3600..2592000, default 2592000 (30 days). */
  expiresAfterSeconds?: number;
  /**
   * Store the file even if it takes the owner past their quota. It is still charged to their
   * usage (and so counts against their next upload); size limits still apply. Meant for writes
   * the platform must not fail, such as batch outputs.
   */
  bypassQuota?: boolean;
}

export interface ListFilesOptions {
  /** 1..10000, default 10000. */
  limit?: number;
  order?: 'asc' | 'desc';
  /** A file id; the page starts after it (it may have been deleted or expired since). */
  after?: string;
  purpose?: string;
}

export interface OpenContentOptions {
  /** Inclusive byte range; `end` defaults to (and is clamped to) the last byte. */
  range?: { start: number; end?: number };
}

export interface FileContentStream {
  file: FileObject;
  /** The content (or the requested range of it). Consume or destroy it. */
  body: Readable;
  /** The range served, when one was requested. */
  range?: ByteRange;
  /** Bytes `body` will yield. */
  length: number;
  /** Hex SHA-256 of the whole file. */
  sha256: string | null;
}

export interface OwnerUsage {
  /** Bytes of the owner's live files (every purpose). */
  usedBytes: number;
  quotaBytes: number;
}

/**
 * The Files API's rules, and the API a host application uses directly (for example to read a
 * user's batch input and write its `batch-output` file). Every read is scoped to the owner and to
 * visible files (`ready`, not expired), so another owner's, a deleted and an expired file all
 * look the same: not found. Errors are FilesError with a FilesErrorCode.
 */
@Injectable()
export class FilesService {
  private readonly logger = new Logger(FilesService.name);

  constructor(
    private readonly repository: FilesRepository,
    private readonly storage: FileStorage,
    private readonly uploads: FileUploadService,
    private readonly clock: Clock,
    private readonly options: FilesModuleOptions,
    /** Created, deleted and expired notifications of this module instance. */
    readonly events: FilesEvents,
  ) {}

  /** Subscribes to file events of this module instance; returns a function that unsubscribes. */
  on<E extends FilesEventName>(name: E, listener: (event: FilesEventMap[E]) => void | Promise<void>): () => void {
    return this.events.on(name, listener);
  }

  /**
   * Streams `content` into a new file for `ownerId` and makes it visible, or leaves nothing
   * behind (no object, no row, no usage) and throws.
   */
  async createFile(input: CreateFileInput): Promise<FileObject> {
    const ownerId = checkOwner(input.ownerId);
    const purpose = input.purpose;
    if (!WRITABLE_PURPOSES.includes(purpose)) {
      throw FilesError.invalid('purpose', `Invalid purpose ${JSON.stringify(purpose)}; expected one of: ${WRITABLE_PURPOSES.join(', ')}.`);
    }
    const expiresAfterSeconds = input.expiresAfterSeconds ?? DEFAULT_EXPIRES_AFTER_SECONDS;
    if (
      !Number.isSafeInteger(expiresAfterSeconds) ||
      expiresAfterSeconds < MIN_EXPIRES_AFTER_SECONDS ||
      expiresAfterSeconds > MAX_EXPIRES_AFTER_SECONDS
    ) {
      throw FilesError.invalid(
        'expires_after.seconds',
        `expiresAfterSeconds must be an integer between ${MIN_EXPIRES_AFTER_SECONDS} and ${MAX_EXPIRES_AFTER_SECONDS}.`,
      );
    }
    const file = await this.uploads.store(ownerId, toReadable(input.content), {
      purpose,
      filename: input.filename,
      expiresAfterSeconds,
      bypassQuota: input.bypassQuota === true,
    });
    return toFileObject(file);
  }

  /**
   * Completes `POST /files` once multer has streamed the file part into storage (under the owner
   * the guard authenticated, which the part carries).
   * @internal The controller's; hosts use createFile.
   */
  async completeUpload(part: UploadedFilePart | undefined, fields: Record<string, unknown>): Promise<FileObject> {
    if (part === undefined) throw FilesError.missing('file');
    return toFileObject(await this.uploads.complete(part.received, fields));
  }

  async list(ownerId: string, options: ListFilesOptions = {}): Promise<FileList> {
    return toFileList(await this.repository.listPage(checkOwner(ownerId), toListQuery(options), this.clock.now()));
  }

  async retrieve(ownerId: string, fileId: string): Promise<FileObject> {
    return toFileObject(await this.findVisible(ownerId, fileId));
  }

  /** Opens the content of the owner's file (or a byte range of it) as a stream. */
  async openContent(ownerId: string, fileId: string, options: OpenContentOptions = {}): Promise<FileContentStream> {
    const file = await this.findVisible(ownerId, fileId);
    const content = await this.open(file, options.range === undefined ? undefined : resolveRange(options.range, file.bytes));
    return {
      file: toFileObject(file),
      body: content.body,
      range: content.range,
      length: content.range ? content.range.end - content.range.start + 1 : file.bytes,
      sha256: file.sha256,
    };
  }

  /**
   * `GET /files/{id}/content`: the owner's file, honouring a single-range `Range` header.
   * @internal The controller's; hosts use openContent.
   */
  async openDownload(ownerId: string, fileId: string, rangeHeader?: string): Promise<FileContent> {
    const file = await this.findVisible(ownerId, fileId);
    const range = parseRange(rangeHeader, file.bytes);
    return this.open(file, range === 'unsatisfiable' ? unsatisfiable(file.bytes) : range);
  }

  /**
   * Takes the file out of view and off the owner's usage in one transaction, then deletes its
   * bytes. If that last step fails the tombstone stays, and the expiry sweeper finishes it.
   */
  async delete(ownerId: string, fileId: string): Promise<FileDeleted> {
    const id = parseFileId(fileId);
    const tombstone = id && (await this.repository.tombstone(checkOwner(ownerId), id.uuid, this.clock.now()));
    if (!tombstone) throw FilesError.notFound(fileId);
    this.events.emit('file.deleted', { ownerId, fileId });
    try {
      await this.storage.delete(storageKeyFor(tombstone.publicId));
      await this.repository.deleteTombstone(tombstone.uuid);
    } catch (error) {
      this.logger.warn(`bytes of deleted file ${fileId} not removed yet; the sweeper will retry: ${(error as Error).message}`);
    }
    return { id: fileId, object: 'file', deleted: true };
  }

  /** What the owner's live files take, and their quota. */
  async usage(ownerId: string): Promise<OwnerUsage> {
    const usedBytes = await this.repository.liveUsage(checkOwner(ownerId), this.clock.now());
    return { usedBytes, quotaBytes: this.options.limits.quotaBytesPerOwner };
  }

  private async open(file: StoredFile, range: ByteRange | undefined): Promise<FileContent> {
    const stream = await this.storage.openRead(storageKeyFor(file.id), range);
    if (stream === null || stream.size !== file.bytes) {
      stream?.body.destroy();
      // Metadata says the file exists but its bytes are missing or wrong: never serve that.
      this.logger.error(
        `file ${file.id} has ${stream === null ? 'no object' : `${stream.size} stored bytes, not ${file.bytes}`} in storage`,
      );
      throw new FilesError(FilesErrorCode.ServiceUnavailable, `The content of ${file.id} is temporarily unavailable.`);
    }
    return { file, body: stream.body, range };
  }

  private async findVisible(ownerId: string, fileId: string): Promise<StoredFile> {
    const id = parseFileId(fileId);
    const file = id && (await this.repository.findVisible(checkOwner(ownerId), id.uuid, this.clock.now()));
    if (!file) throw FilesError.notFound(fileId);
    return file;
  }
}

function checkOwner(ownerId: string): string {
  // Host code passes owners directly; an empty one is a bug that must not become a shared bucket.
  if (typeof ownerId !== 'string' || ownerId === '') throw FilesError.invalid('owner', 'ownerId must be a non-empty string.');
  return ownerId;
}

function toReadable(content: FileContentSource): Readable {
  if (content instanceof Readable) return content;
  if (typeof content === 'string' || content instanceof Uint8Array) return Readable.from([Buffer.from(content)]);
  return Readable.from(content);
}

/** Validated with the rules of `GET /files` (the controller's values pass through unchanged). */
function toListQuery(options: ListFilesOptions): ListQuery {
  const raw: Record<string, unknown> = {};
  if (options.limit !== undefined) raw.limit = String(options.limit);
  if (options.order !== undefined) raw.order = options.order;
  if (options.after !== undefined) raw.after = options.after;
  if (options.purpose !== undefined) raw.purpose = options.purpose;
  return parseListQuery(raw);
}

function resolveRange(range: { start: number; end?: number }, size: number): ByteRange {
  const { start } = range;
  const end = range.end === undefined ? size - 1 : Math.min(range.end, size - 1);
  if (!Number.isSafeInteger(start) || start < 0 || (range.end !== undefined && (!Number.isSafeInteger(range.end) || range.end < start))) {
    throw FilesError.invalid('range', 'range must have integers 0 <= start <= end.');
  }
  if (start >= size) return unsatisfiable(size);
  return { start, end };
}

function unsatisfiable(size: number): never {
  throw new FilesError(
    FilesErrorCode.RangeNotSatisfiable,
    `The requested range is not satisfiable; the file has ${size} bytes.`,
    'range',
    { headers: { 'Content-Range': `bytes */${size}` } },
  );
}
