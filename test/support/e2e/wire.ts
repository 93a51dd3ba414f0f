import { S3Client } from '@aws-sdk/client-s3';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { TestApp } from '../app';

export interface SeenRequest {
  method: string;
  /** Path and query, as the client sent them. */
  url: string;
  headers: IncomingHttpHeaders;
}

/**
 * Records the request line and headers of every request as they arrive at the test app's HTTP
 * server (an extra 'request' listener beside Express's; it never touches the body). This is what
 * the client really sent, not what it meant to send.
 */
export function recordRequests(t: TestApp): { seen: SeenRequest[]; stop(): void } {
  const server = t.app.getHttpServer();
  const seen: SeenRequest[] = [];
  const listener = (request: IncomingMessage) => {
    seen.push({ method: request.method ?? '', url: request.url ?? '', headers: { ...request.headers } });
  };
  server.on('request', listener);
  return { seen, stop: () => server.off('request', listener) };
}

export interface S3Call {
  /** The command's class name, e.g. `UploadPartCommand`. */
  command: string;
  key?: string;
}

/**
 * Records every command any S3 client in this process sends (the service's own client included,
 * since the test app runs in-process), so a test can tell how bytes really reached the bucket.
 */
export function recordS3Calls(): { calls(key?: string): S3Call[]; stop(): void } {
  const recorded: S3Call[] = [];
  const prototype = S3Client.prototype as { send(command: unknown, ...rest: unknown[]): Promise<unknown> };
  const send = prototype.send;
  // Not mockRestore's job: it would also forget the calls recorded.
  const spy = jest.spyOn(prototype, 'send').mockImplementation(function (this: S3Client, command, ...rest) {
    const c = command as { constructor: { name: string }; input?: { Key?: string } };
    recorded.push({ command: c.constructor.name, key: c.input?.Key });
    return send.call(this, command, ...rest);
  });
  return {
    calls: (key) => recorded.filter((call) => key === undefined || call.key === key),
    stop: () => spy.mockRestore(),
  };
}
