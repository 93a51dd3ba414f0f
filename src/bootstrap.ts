import { ConsoleLogger, type LogLevel } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { openAiError } from './common/openai-error';
import type { AppConfig, LogLevelName } from './config/app-config';

const LEVELS: LogLevelName[] = ['error', 'warn', 'log', 'debug', 'verbose'];

/** A logger that writes every level to stderr, for commands whose stdout is their output. */
class StderrLogger extends ConsoleLogger {
  protected override printMessages(
    messages: unknown[],
    context?: string,
    logLevel?: LogLevel,
    _stream?: 'stdout' | 'stderr',
    errorStack?: unknown,
    params?: Record<string, any>,
  ): void {
    super.printMessages(messages, context, logLevel, 'stderr', errorStack, params);
  }
}

/**
 * Structured (JSON) or human-readable logs at the configured level. `stderr: true` keeps stdout
 * for a command's own output (`npm run audit -- --json | jq`); Nest writes log and warn to stdout.
 */
export function createLogger(config: AppConfig['log'], options: { stderr?: boolean } = {}): ConsoleLogger {
  const logLevels: LogLevel[] = LEVELS.slice(0, LEVELS.indexOf(config.level) + 1);
  return new (options.stderr ? StderrLogger : ConsoleLogger)({
    json: config.format === 'json',
    logLevels: [...logLevels, 'fatal'],
    prefix: 'files-api',
    flattenParams: true,
    // Never print these even if some object carrying them reaches a log call.
    redact: ['authorization', 'apiKey', 'api_key', 'secretAccessKey', 'password'],
  });
}

/**
 * Options for NestFactory.create / createNestApplication, shared by the service and the tests.
 * No endpoint takes a JSON or form-urlencoded body, so no body parser runs: a non-multipart upload
 * reaches the Files API's own checks (authentication first, then "must be multipart").
 */
export const APP_OPTIONS = { bodyParser: false } as const;

/** Express settings shared by the service and the tests, applied before listening. */
export function configureApp(app: NestExpressApplication): void {
  app.disable('x-powered-by');
  // Repeated query keys become arrays (and are refused); no nested objects from `a[b]=c`.
  app.set('query parser', 'simple');
}

/** Server timeouts and protocol-error answers, applied once listening. */
export function configureServer(server: Server): void {
  server.on('clientError', answerClientError);
  // Large uploads over slow links legitimately take long: bound idle time, not total time.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  server.setTimeout(120_000);
}

/**
 * Requests Node's HTTP parser rejects (oversized headers, malformed request lines) never reach
 * Express; answer them with the same OpenAI-shaped error body as everything else.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable || (error.code !== undefined && ['ECONNRESET', 'EPIPE'].includes(error.code))) {
    socket.destroy();
    return;
  }
  const [status, reason, message] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'Request headers are too large.']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'The request took too long to arrive.']
        : [400, 'Bad Request', 'Malformed HTTP request.'];
  const body = JSON.stringify(openAiError(message, { code: 'invalid_request' }));
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: close\r\n\r\n${body}`,
  );
}
