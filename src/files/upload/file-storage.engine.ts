import type { Request } from 'express';
import type { StorageEngine } from 'multer';
import { PassThrough } from 'node:stream';
import { ownerOf } from '../auth/owner';
import { ClientDisconnectedError } from '../files.errors';
import { FileUploadService, ReceivedUpload } from './file-upload.service';

/** The file object multer hands to the controller: multer's own fields plus our upload. */
export interface UploadedFilePart extends Express.Multer.File {
  received: ReceivedUpload;
}

const IN_FLIGHT = Symbol('files-api.uploadsInFlight');
type WithUploads = Request & { [IN_FLIGHT]?: Promise<unknown> };

/**
 * Settles once the engine is done with every file part of `req`: stored, or refused and cleaned
 * up. multer answers a part that fails mid-stream (truncated form) without waiting for the engine.
 */
export function uploadsSettled(req: Request): Promise<unknown> {
  return (req as WithUploads)[IN_FLIGHT] ?? Promise.resolve();
}

/**
 * The part as the upload service reads it. busboy destroys a part stream with an error (form cut
 * off, client gone) possibly while the service is still awaiting the database and has not yet
 * attached its listeners; that 'error' would be missed and the upload would wait forever, holding
 * its pending row and partial bytes. This stream re-raises such an error once it is being read.
 */
class PartStream extends PassThrough {
  fail(error: Error): void {
    if (this.destroyed || this.writableEnded) return;
    if (this.readableFlowing) this.destroy(error);
    else this.once('resume', () => this.destroy(error));
  }
}

/**
 * A multer storage engine that streams the file part straight into FileUploadService (and so
 * into the storage port): nothing is buffered to memory or to a temporary file.
 */
export class FileStorageEngine implements StorageEngine {
  constructor(private readonly uploads: FileUploadService) {}

  _handleFile(
    req: Request,
    file: Express.Multer.File,
    callback: (error?: unknown, info?: Partial<UploadedFilePart>) => void,
  ): void {
    // Without this, a client that disconnects mid-part leaves the part stream open forever and
    // the storage write (an S3 multipart upload) waiting on it.
    const onClose = () => {
      if (!req.readableEnded) file.stream.destroy(new ClientDisconnectedError());
    };
    req.once('close', onClose);
    const part = new PartStream();
    file.stream.once('error', (error) => part.fail(error));
    file.stream.pipe(part);
    const done = this.uploads.receive(ownerOf(req), part, file.originalname, req.body ?? {}).then(
      (received) => {
        req.off('close', onClose);
        callback(null, { received, size: received.bytes });
      },
      (error: unknown) => {
        req.off('close', onClose);
        callback(error);
      },
    );
    const withUploads = req as WithUploads;
    withUploads[IN_FLIGHT] = Promise.allSettled([withUploads[IN_FLIGHT], done]);
  }

  _removeFile(_req: Request, file: Express.Multer.File, callback: (error: Error | null) => void): void {
    const received = (file as Partial<UploadedFilePart>).received;
    if (!received) return callback(null);
    this.uploads.discard(received).then(
      () => callback(null),
      (error: Error) => callback(error),
    );
  }
}
