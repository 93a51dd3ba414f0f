import { randomUUID } from 'node:crypto';
import { Injectable, Logger, NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { maybeOwnerOf } from '../files/auth/owner';

const REQUEST_ID = Symbol('files-api.requestId');
type WithId = Request & { [REQUEST_ID]?: string };

/** A client-chosen id is kept only if it is short and plain; otherwise we mint one. */
const CLIENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdOf(request: Request): string | undefined {
  return (request as WithId)[REQUEST_ID];
}

/**
 * Gives every request an id (echoed as `x-request-id`, found in every log line about it) and
 * writes one structured access-log line when the response is done. Never logs headers, so API
 * keys cannot end up in logs.
 */
@Injectable()
export class RequestContextMiddleware implements NestMiddleware {
  private readonly logger = new Logger('HTTP');

  use(request: Request, response: Response, next: NextFunction): void {
    const incoming = request.headers['x-request-id'];
    const id = typeof incoming === 'string' && CLIENT_ID.test(incoming) ? incoming : `req_${randomUUID().replace(/-/g, '')}`;
    (request as WithId)[REQUEST_ID] = id;
    response.setHeader('x-request-id', id);
    const started = process.hrtime.bigint();
    response.once('close', () => {
      const entry = {
        requestId: id,
        method: request.method,
        path: request.originalUrl.split('?')[0],
        status: response.statusCode,
        owner: maybeOwnerOf(request),
        durationMs: Number((process.hrtime.bigint() - started) / 1_000_000n),
        bytesIn: Number(request.headers['content-length'] ?? 0) || undefined,
        completed: response.writableFinished,
      };
      if (entry.path === '/healthz' || entry.path === '/readyz') this.logger.debug(entry);
      else this.logger.log(entry);
    });
    next();
  }
}
