import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { migrate } from 'files-api';
import { loadPlatformConfig } from './src/platform.config';
import { PlatformModule } from './src/platform.module';

/** The batch platform as a process: configuration from the environment, files-api's tables first. */
async function main(): Promise<void> {
  const config = loadPlatformConfig(process.env);
  const { applied } = await migrate(config.databaseUrl);
  if (applied.length > 0) Logger.log(`files-api migrations applied: ${applied.join(', ')}`, 'BatchPlatform');
  const app = await NestFactory.create(PlatformModule.forRoot(config));
  app.enableShutdownHooks();
  await app.listen(config.port);
  Logger.log(`batch platform listening on port ${config.port}`, 'BatchPlatform');
}

main().catch((error: Error) => {
  console.error(`batch platform failed to start: ${error.stack ?? error.message}`);
  process.exit(1);
});
