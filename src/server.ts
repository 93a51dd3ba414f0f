import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { Server } from 'node:http';
import { AppModule } from './app.module';
import { APP_OPTIONS, configureApp, configureServer, createLogger } from './bootstrap';
import type { AppConfig } from './config/app-config';
import { ShutdownState } from './health/shutdown-state';

/** Starts the HTTP service with validated configuration and drains it on SIGTERM/SIGINT. */
export async function startServer(config: AppConfig): Promise<void> {
  const logger = createLogger(config.log);
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), { ...APP_OPTIONS, logger });
  configureApp(app);
  const server: Server = await app.listen(config.port, config.host);
  configureServer(server);
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
