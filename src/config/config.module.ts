import { DynamicModule, Global, Module } from '@nestjs/common';
import { type AppConfig, loadConfig } from './app-config';

/** DI token for the validated configuration. */
export abstract class AppConfigToken {}

/** Provides the validated AppConfig (loaded once, at boot, by main.ts or a test). */
@Global()
@Module({})
export class ConfigModule {
  static forRoot(config: AppConfig = loadConfig()): DynamicModule {
    return {
      module: ConfigModule,
      providers: [{ provide: AppConfigToken, useValue: config }],
      exports: [AppConfigToken],
    };
  }
}
