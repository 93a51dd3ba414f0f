import 'reflect-metadata';
import { ConsoleLogger, type LogLevel, Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { Server } from 'node:http';
import { AppModule } from './app.module';
import { type AppConfig, ConfigError, type LogLevelName, loadConfig } from './config/app-config';
import { ShutdownState } from './health/shutdown-state';

const LEVELS: LogLevelName[] = ['error', 'warn', 'log', 'debug', 'verbose'];

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

async function bootstrap(): Promise<void> {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  const logger = createLogger(config.log);
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), { logger });
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  const server: Server = await app.listen(config.port, config.host);
  // Large uploads over slow links legitimately take long: bound idle time, not total time.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  server.setTimeout(120_000);
  Logger.log(`listening on ${config.host}:${config.port} (storage: ${config.storage.driver})`, 'Bootstrap');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    Logger.log(`${signal} received: draining in-flight requests (up to ${config.shutdownGraceMs} ms)`, 'Bootstrap');
    app.get(ShutdownState).draining = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Idle keep-alive sockets would hold close() open; busy ones finish their request first.
    const sweeper = setInterval(() => server.closeIdleConnections(), 200);
    server.closeIdleConnections();
    const timedOut = await Promise.race([
      closed.then(() => false),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(true), config.shutdownGraceMs).unref()),
    ]);
    clearInterval(sweeper);
    if (timedOut) {
      Logger.warn('grace period over: closing remaining connections', 'Bootstrap');
      server.closeAllConnections();
    }
    await app.close();
    Logger.log('shut down cleanly', 'Bootstrap');
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

bootstrap().catch((error: Error) => {
  Logger.error(`failed to start: ${error.message}`, error.stack, 'Bootstrap');
  process.exit(1);
});
