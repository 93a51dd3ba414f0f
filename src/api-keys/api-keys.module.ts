import { type DynamicModule, Logger, Module } from '@nestjs/common';
import { Clock, SystemClock } from '../common/clock';
import type { DatabaseOptions } from '../database/files-database';
import { ApiKeysDatabase } from './api-keys.database';
import { ApiKeysRepository } from './api-keys.repository';
import { ApiKeysService } from './api-keys.service';
import { ManagedApiKeyResolver } from './managed-api-key.resolver';

export interface ApiKeysModuleOptions {
  /** The service's database; the module opens its own small pool on it. */
  database: DatabaseOptions;
  /** Static keys from API_KEYS (key → owner), checked before the database. */
  envKeys: ReadonlyMap<string, string>;
  /** API_KEY_CACHE_SECONDS. */
  cacheSeconds: number;
}

/** Key lookups are one indexed read each (and mostly cached): two connections are plenty. */
const POOL_MAX = 2;

/**
 * Managed API keys for the standalone service: the `api_keys` table behind its own pool, and the
 * ManagedApiKeyResolver the service hands to FilesModule as its OwnerResolver.
 */
@Module({})
export class ApiKeysModule {
  static forRoot(options: ApiKeysModuleOptions): DynamicModule {
    return {
      module: ApiKeysModule,
      providers: [
        { provide: ApiKeysDatabase, useFactory: () => new ApiKeysDatabase({ ...options.database, poolMax: POOL_MAX }) },
        { provide: Clock, useClass: SystemClock },
        ApiKeysRepository,
        ApiKeysService,
        {
          provide: ManagedApiKeyResolver,
          inject: [ApiKeysRepository, Clock],
          useFactory: (repository: ApiKeysRepository, clock: Clock) => {
            if (options.envKeys.size === 0) {
              new Logger(ApiKeysModule.name).warn(
                'API_KEYS is empty: only managed API keys authenticate (create one with `npm run cli -- keys create --owner <owner>`)',
              );
            }
            return new ManagedApiKeyResolver(repository, clock, { envKeys: options.envKeys, cacheSeconds: options.cacheSeconds });
          },
        },
      ],
      exports: [ManagedApiKeyResolver, ApiKeysService],
    };
  }
}
