import { Catch, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';
import { OpenAiExceptionFilter } from 'files-api';

/** An error of the platform's own API, answered in OpenAI's error shape. */
export class PlatformApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = 'PlatformApiError';
  }

  static unauthorized(): PlatformApiError {
    return new PlatformApiError(401, 'Incorrect API key provided.', 'invalid_api_key');
  }

  static missing(param: string): PlatformApiError {
    return new PlatformApiError(400, `Missing required parameter: '${param}'.`, 'missing_required_parameter', param);
  }

  static invalid(param: string, message: string): PlatformApiError {
    return new PlatformApiError(400, message, 'invalid_value', param);
  }

  static notFound(message: string, param = 'id'): PlatformApiError {
    return new PlatformApiError(404, message, null, param);
  }
}

/**
 * The platform's errors in OpenAI's shape; everything else (FilesError from FilesService, Nest's
 * HTTP exceptions, unexpected errors) goes to files-api's own filter, so both APIs answer alike.
 */
@Catch()
export class PlatformExceptionFilter implements ExceptionFilter {
  private readonly files = new OpenAiExceptionFilter();

  catch(exception: unknown, host: ArgumentsHost): void {
    if (!(exception instanceof PlatformApiError)) return this.files.catch(exception, host);
    const { status, message, param, code } = exception;
    host.switchToHttp().getResponse<Response>().status(status).json({ error: { message, type: 'invalid_request_error', param, code } });
  }
}
