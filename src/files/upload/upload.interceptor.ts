import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import type { Request, Response } from 'express';
import multer, { MulterError } from 'multer';
import type { Observable } from 'rxjs';
import { ownerOf } from '../auth/owner';
import { FilesError, FilesErrorCode } from '../files.errors';
import { FilesModuleOptions } from '../files.options';
import { FileStorageEngine, uploadsSettled } from './file-storage.engine';
import { FileUploadService } from './file-upload.service';
import { UploadSlots } from './upload-slots';

/**
 * Bounds on the multipart form apart from the file itself: a Files upload has one file and a
 * handful of short fields, so anything much larger is refused before it costs memory.
 */
export const MULTIPART_LIMITS = {
  fieldNameSize: 100,
  fieldSize: 16 * 1024,
  fields: 8,
  files: 1,
  parts: 10,
  headerPairs: 20,
  fieldNestingDepth: 1,
  fieldArrayIndexLimit: 0,
} as const;

/**
 * Parses `POST /files` forms with multer and the streaming storage engine, holding an upload
 * slot (429 beyond the caps) for as long as the response is open.
 */
@Injectable()
export class UploadInterceptor implements NestInterceptor {
  private readonly parse: ReturnType<ReturnType<typeof multer>['single']>;
  private readonly slots: UploadSlots;

  constructor(uploads: FileUploadService, options: FilesModuleOptions) {
    this.slots = new UploadSlots(options.limits.maxConcurrentUploads, options.limits.maxConcurrentUploadsPerOwner);
    this.parse = multer({
      storage: new FileStorageEngine(uploads),
      limits: MULTIPART_LIMITS,
      // Filenames in part headers are UTF-8 in practice (browsers, curl, the openai clients).
      defParamCharset: 'utf8',
    }).single('file');
  }

  async intercept(context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    const http = context.switchToHttp();
    const request = http.getRequest<Request>();
    const response = http.getResponse<Response>();
    if (!request.is('multipart/form-data')) {
      throw new FilesError(
        FilesErrorCode.InvalidMultipart,
        "Uploads must be sent as multipart/form-data with a 'file' part and a 'purpose' field.",
      );
    }
    const release = this.slots.acquire(ownerOf(request));
    response.once('close', release);
    try {
      await new Promise<void>((resolve, reject) =>
        this.parse(request, response, (error?: unknown) => (error ? reject(error) : resolve())),
      );
    } catch (error) {
      // Answer only once a part that failed mid-stream has been cleaned up: nothing left behind.
      await uploadsSettled(request);
      throw toFilesError(error);
    }
    return next.handle();
  }
}

function toFilesError(error: unknown): unknown {
  if (error instanceof MulterError) {
    const param = error.field ?? null;
    switch (error.code) {
      case 'LIMIT_UNEXPECTED_FILE':
      case 'LIMIT_FILE_COUNT':
        return new FilesError(
          FilesErrorCode.InvalidMultipart,
          param && param !== 'file'
            ? `Unexpected file part '${param}'; send exactly one file, in the 'file' field.`
            : "Send exactly one file, in the 'file' field.",
          param ?? 'file',
        );
      case 'LIMIT_FIELD_VALUE':
        return FilesError.invalid(param ?? 'form', `The value of field '${param}' is too long.`);
      default:
        return new FilesError(FilesErrorCode.InvalidMultipart, `Malformed multipart form: ${error.message}.`, param);
    }
  }
  if (error instanceof Error && BUSBOY_ERROR.test(error.message)) {
    return new FilesError(FilesErrorCode.InvalidMultipart, `Malformed multipart form: ${error.message}.`, null, {
      cause: error,
    });
  }
  return error;
}

/** What busboy (and multer, for a vanished client) throw on a body that is not a valid form. */
const BUSBOY_ERROR = /^(Multipart: |Malformed |Unexpected end of |Unsupported content type|Request (aborted|closed))/;
