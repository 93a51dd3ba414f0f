import type { Request } from 'express';
import type { StorageEngine } from 'multer';
import { ownerOf } from '../auth/owner';
import { ClientDisconnectedError } from '../files.errors';
import { FileUploadService, ReceivedUpload } from './file-upload.service';

/** The file object multer hands to the controller: multer's own fields plus our upload. */
export interface UploadedFilePart extends Express.Multer.File {
  received: ReceivedUpload;
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
    this.uploads.receive(ownerOf(req), file.stream, file.originalname, req.body ?? {}).then(
      (received) => {
        req.off('close', onClose);
        callback(null, { received, size: received.bytes });
      },
      (error: unknown) => {
        req.off('close', onClose);
        callback(error);
      },
    );
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
