import { MiddlewareConsumer, Module, NestModule, type DynamicModule } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import type { AppConfig } from './config/app-config';
import { AppConfigToken, ConfigModule } from './config/config.module';
import { OpenAiExceptionFilter } from './common/openai-exception.filter';
import { RequestContextMiddleware } from './common/request-context';
import { ApiKeyOwnerResolver } from './files/auth/owner-resolver';
import { FilesModule } from './files/files.module';
import type { FilesModuleOptions } from './files/files.options';
import { HealthController } from './health/health.controller';
import { ShutdownState } from './health/shutdown-state';

/** FilesModule options for the standalone service: everything from validated environment config. */
export function filesOptionsFrom(config: AppConfig): FilesModuleOptions {
  return {
    database: config.database,
    storage: config.storage,
    ownerResolver: new ApiKeyOwnerResolver(config.apiKeys),
    limits: config.limits,
    expiry: config.expiry,
    reconcile: config.reconcile,
  };
}

/** The standalone files-api service. */
@Module({})
export class AppModule implements NestModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        FilesModule.forRootAsync({
          inject: [AppConfigToken],
          useFactory: (c: AppConfig) => filesOptionsFrom(c),
        }),
      ],
      controllers: [HealthController],
      providers: [ShutdownState, { provide: APP_FILTER, useClass: OpenAiExceptionFilter }],
    };
  }

  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(RequestContextMiddleware).forRoutes('*path');
  }
}
