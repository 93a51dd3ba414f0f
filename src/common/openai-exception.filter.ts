import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import {
  ClientDisconnectedError,
  DatabaseUnavailableError,   FilesError,
  FilesErrorCode,
  StorageUnavailableError,
} from '../files/files.errors';
import { openAiError, type OpenAiErrorBody } from './openai-error';
import { requestIdOf } from './request-context';

interface Mapped {
  status: number;
  body: OpenAiErrorBody;
  headers?: Record<string, string>;
}

/**
 * Turns every exception into an OpenAI-shaped error response: domain errors by code (exhaustive),
 * unavailable backends as 503, Nest's HTTP exceptions by status, anything else as a generic 500
 * whose cause is logged but never sent. If the response has already started (a download failing
 * mid-stream) the connection is cut so the client sees a truncated transfer, not a valid file.
 */
@Catch()
export class OpenAiExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger(OpenAiExceptionFilter.name);

  catch(exception: unknown, host: ArgumentsHost): void {
    const context = host.switchToHttp();
    const request = context.getRequest<Request>();
    const response = context.getResponse<Response>();
    const requestId = requestIdOf(request);

    if (exception instanceof ClientDisconnectedError) {
      this.logger.debug({ requestId, message: 'client went away before the response' });
      return;
    }
    const mapped = this.map(exception, request);
    if (mapped.status >= 500) {
      const cause = exception instanceof Error ? (exception.cause ?? exception) : exception;
      const detail = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
      if (mapped.status === 503) this.logger.warn({ requestId, message: `backend unavailable: ${detail}` });
      else this.logger.error({ requestId, message: `unhandled error: ${detail}`, stack: (cause as Error)?.stack });
    }
    if (response.destroyed) return;
    if (response.headersSent) {
      response.destroy();
      return;
    }
    for (const [name, value] of Object.entries(mapped.headers ?? {})) response.setHeader(name, value);
    response.status(mapped.status).json(mapped.body);
  }

  private map(exception: unknown, request: Request): Mapped {
    if (exception instanceof FilesError) return mapFilesError(exception);
    if (exception instanceof StorageUnavailableError) return unavailable('file storage');
    if (exception instanceof DatabaseUnavailableError) return unavailable('database');
    if (exception instanceof HttpException) return mapHttpException(exception, request);
    return {
      status: HttpStatus.INTERNAL_SERVER_ERROR,
      body: openAiError('The server had an error while processing your request. Sorry about that!', {
        type: 'server_error',
      }),
    };
  }
}

export function mapFilesError(error: FilesError): Mapped {
  const body = (type = 'invalid_request_error', code: string | null = error.code) =>
    openAiError(error.message, { type, param: error.param, code });
  switch (error.code) {
    case FilesErrorCode.InvalidApiKey:
      return { status: HttpStatus.UNAUTHORIZED, body: body() };
    case FilesErrorCode.FileNotFound:
      return { status: HttpStatus.NOT_FOUND, body: body('invalid_request_error', null) };
    case FilesErrorCode.MissingParameter:
    case FilesErrorCode.InvalidValue:
    case FilesErrorCode.UnsupportedPurpose:
    case FilesErrorCode.EmptyFile:
    case FilesErrorCode.QuotaExceeded:
    case FilesErrorCode.InvalidMultipart:
      return { status: HttpStatus.BAD_REQUEST, body: body() };
    case FilesErrorCode.RangeNotSatisfiable:
      return { status: HttpStatus.REQUESTED_RANGE_NOT_SATISFIABLE, body: body(), headers: error.headers };
    case FilesErrorCode.MethodNotAllowed:
      return { status: HttpStatus.METHOD_NOT_ALLOWED, body: body() };
    case FilesErrorCode.FileTooLarge:
      return { status: HttpStatus.PAYLOAD_TOO_LARGE, body: body() };
    case FilesErrorCode.TooManyUploads:
      return {
        status: HttpStatus.TOO_MANY_REQUESTS,
        body: body(),
        headers: { 'Retry-After': String(error.retryAfterSeconds ?? 1) },
      };
    case FilesErrorCode.ServiceUnavailable:
      return { status: HttpStatus.SERVICE_UNAVAILABLE, body: body('server_error', null), headers: { 'Retry-After': '1' } };
  }
}

function unavailable(what: string): Mapped {
  return mapFilesError(FilesError.unavailable(what));
}

function mapHttpException(exception: HttpException, request: Request): Mapped {
  const status = exception.getStatus();
  if (status === HttpStatus.NOT_FOUND) {
    return {
      status,
      body: openAiError(`Unknown request URL: ${request.method} ${request.path}.`, { code: 'unknown_url' }),
    };
  }
  const response = exception.getResponse();
  const message =
    typeof response === 'object' && response !== null && 'message' in response
      ? String((response as { message: unknown }).message)
      : exception.message;
  return {
    status,
    body: openAiError(message, { type: status >= 500 ? 'server_error' : 'invalid_request_error' }),
  };
}
