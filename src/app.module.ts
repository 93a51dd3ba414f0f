import { MiddlewareConsumer, Module, NestModule, type DynamicModule } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { ApiKeysModule } from './api-keys/api-keys.module';
import { ManagedApiKeyResolver } from './api-keys/managed-api-key.resolver';
import type { AppConfig } from './config/app-config';
import { AppConfigToken, ConfigModule } from './config/config.module';
import { OpenAiExceptionFilter } from './common/openai-exception.filter';
import { RequestContextMiddleware } from './common/request-context';
import { ApiKeyOwnerResolver, type OwnerResolver } from './files/auth/owner-resolver';
import { FilesModule } from './files/files.module';
import type { FilesModuleOptions } from './files/files.options';
import { HealthController } from './health/health.controller';
import { ShutdownState } from './health/shutdown-state';

/**
 * FilesModule options for the standalone service: everything from validated environment config.
 * The owner resolver defaults to the static API_KEYS only (what tools without a key database,
 * such as the audit command, need); the service passes its ManagedApiKeyResolver.
 */
export function filesOptionsFrom(
  config: AppConfig,
  ownerResolver: OwnerResolver = new ApiKeyOwnerResolver(config.apiKeys),
): FilesModuleOptions {
  return {
    database: config.database,
    storage: config.storage,
    ownerResolver,
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
          imports: [
            ApiKeysModule.forRoot({ database: config.database, envKeys: config.apiKeys, cacheSeconds: config.apiKeyCacheSeconds }),
          ],
          inject: [AppConfigToken, ManagedApiKeyResolver],
          useFactory: (c: AppConfig, resolver: ManagedApiKeyResolver) => filesOptionsFrom(c, resolver),
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
