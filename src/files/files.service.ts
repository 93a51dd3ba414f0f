import { Injectable, Logger } from '@nestjs/common';
import { Clock } from '../common/clock';
import type { FileContent } from './download';
import { parseRange } from './download';
import { parseFileId } from './file-id';
import { toFileList, toFileObject, type FileDeleted, type FileList, type FileObject } from './file.mapper';
import type { ListQuery } from './file.types';
import { FilesError, FilesErrorCode } from './files.errors';
import { FilesRepository } from './files.repository';
import { FileStorage } from './storage/file-storage';
import { storageKeyFor } from './storage/storage-key';
import type { UploadedFilePart } from './upload/file-storage.engine';
import { FileUploadService } from './upload/file-upload.service';

/**
 * The Files API's rules. Every read is scoped to the owner and to visible files (`ready`, not
 * expired), so another owner's, a deleted and an expired file all look the same: not found.
 */
@Injectable()
export class FilesService {
  private readonly logger = new Logger(FilesService.name);

  constructor(
    private readonly repository: FilesRepository,
    private readonly storage: FileStorage,
    private readonly uploads: FileUploadService,
    private readonly clock: Clock,
  ) {}

  /**
   * Completes `POST /files` once multer has streamed the file part into storage (under the owner
   * the guard authenticated, which the part carries).
   */
  async create(part: UploadedFilePart | undefined, fields: Record<string, unknown>): Promise<FileObject> {
    if (part === undefined) throw FilesError.missing('file');
    return toFileObject(await this.uploads.complete(part.received, fields));
  }

  async list(ownerId: string, query: ListQuery): Promise<FileList> {
    return toFileList(await this.repository.listPage(ownerId, query, this.clock.now()));
  }

  async retrieve(ownerId: string, publicId: string): Promise<FileObject> {
    return toFileObject(await this.findVisible(ownerId, publicId));
  }

  async openContent(ownerId: string, publicId: string, rangeHeader?: string): Promise<FileContent> {
    const file = await this.findVisible(ownerId, publicId);
    const range = parseRange(rangeHeader, file.bytes);
    if (range === 'unsatisfiable') {
      throw new FilesError(
        FilesErrorCode.RangeNotSatisfiable,
        `The requested range is not satisfiable; the file has ${file.bytes} bytes.`,
        'range',
        { headers: { 'Content-Range': `bytes */${file.bytes}` } },
      );
    }
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

  /**
   * Takes the file out of view and off the owner's usage in one transaction, then deletes its
   * bytes. If that last step fails the tombstone stays, and the expiry sweeper finishes it.
   */
  async delete(ownerId: string, publicId: string): Promise<FileDeleted> {
    const id = parseFileId(publicId);
    const tombstone = id && (await this.repository.tombstone(ownerId, id.uuid, this.clock.now()));
    if (!tombstone) throw FilesError.notFound(publicId);
    try {
      await this.storage.delete(storageKeyFor(tombstone.publicId));
      await this.repository.deleteTombstone(tombstone.uuid);
    } catch (error) {
      this.logger.warn(`bytes of deleted file ${publicId} not removed yet; the sweeper will retry: ${(error as Error).message}`);
    }
    return { id: publicId, object: 'file', deleted: true };
  }

  private async findVisible(ownerId: string, publicId: string) {
    const id = parseFileId(publicId);
    const file = id && (await this.repository.findVisible(ownerId, id.uuid, this.clock.now()));
    if (!file) throw FilesError.notFound(publicId);
    return file;
  }
}
