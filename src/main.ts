import 'reflect-metadata';
import { type AppConfig, ConfigError, loadConfig } from './config/app-config';

/**
 * Entry point: validates the configuration first, and only then loads NestJS and the app, so a
 * bad configuration is reported at once (exit status 78, the variable named).
 */
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
  const { startServer } = require('./server') as typeof import('./server');
  await startServer(config);
}

bootstrap().catch((error: Error) => {
  console.error(`failed to start: ${error.stack ?? error.message}`);
  process.exit(1);
});
