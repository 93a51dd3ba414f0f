import { ConsoleLogger, type LogLevel } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { Server } from 'node:http';
import type { AppConfig, LogLevelName } from './config/app-config';

const LEVELS: LogLevelName[] = ['error', 'warn', 'log', 'debug', 'verbose'];

/** Structured (JSON) or human-readable logs at the configured level. */
export function createLogger(config: AppConfig['log']): ConsoleLogger {
  const logLevels: LogLevel[] = LEVELS.slice(0, LEVELS.indexOf(config.level) + 1);
  return new ConsoleLogger({
    json: config.format === 'json',
    logLevels: [...logLevels, 'fatal'],
    prefix: 'files-api',
    flattenParams: true,
    // Never print these even if some object carrying them reaches a log call.
    redact: ['authorization', 'apiKey', 'api_key', 'secretAccessKey', 'password'],
  });
}

/** Express settings shared by the service and the tests, applied before listening. */
export function configureApp(app: NestExpressApplication): void {
  app.disable('x-powered-by');
  // Repeated query keys become arrays (and are refused); no nested objects from `a[b]=c`.
  app.set('query parser', 'simple');
}

/** Server timeouts, applied once listening. */
export function configureServer(server: Server): void {
  // Large uploads over slow links legitimately take long: bound idle time, not total time.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  server.setTimeout(120_000);
}
