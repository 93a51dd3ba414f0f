import { Controller, DynamicModule, Inject, Module, type ModuleMetadata, type OnApplicationShutdown, type Provider, type Type } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { Clock, SystemClock } from '../common/clock';
import { FilesDatabase } from '../database/files-database';
import { FilesAuthGuard } from './auth/files-auth.guard';
import { OwnerResolver } from './auth/owner-resolver';
import { ExpirySweeper } from './expiry/expiry.sweeper';
import { FilesController } from './files.controller';
import { FILES_ROUTES } from './files.routes';
import { FilesEvents } from './files.events';
import { FilesHealth } from './files.health';
import { FilesInstance } from './files.instance';
import { FilesMetrics } from './files.metrics';
import { FilesModuleOptions, resolveFilesOptions, type FilesModuleSettings } from './files.options';
import { FilesRepository } from './files.repository';
import { FilesService } from './files.service';
import { ReconcileRepository } from './reconcile/reconcile.repository';
import { Reconciler } from './reconcile/reconciler';
import { FileStorage } from './storage/file-storage';
import { PrefixedFileStorage } from './storage/prefixed-file-storage';
import { createFileStorage } from './storage/storage.factory';
import { FileUploadService } from './upload/file-upload.service';
import { UploadInterceptor } from './upload/upload.interceptor';

/** What is fixed when the module is defined (it decides controllers and exports), not by the factory. */
export interface FilesModuleDefinition {
  /**
   * Base paths of the Files routes; default `['v1/openai/files', 'v1/files']`. `false`: no HTTP
   * routes at all (the host uses FilesService only).
   */
  routes?: string[] | false;
  /**
   * Names an instance, for a host that runs several (each with its own database, storage and
   * routes). A named instance exports its FilesService under `filesServiceToken(name)` (inject it
   * with `@InjectFilesService(name)`) instead of under the FilesService class.
   */
  name?: string;
}

export interface FilesModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'>, FilesModuleDefinition {
  inject?: any[];
  useFactory: (...args: any[]) => FilesModuleSettings | Promise<FilesModuleSettings>;
}

/** The DI token of a named instance's FilesService. */
export function filesServiceToken(name: string): symbol {
  return Symbol.for(`files-api:FilesService:${name}`);
}

/** Injects the FilesService of the FilesModule instance called `name`. */
export const InjectFilesService = (name: string): ParameterDecorator & PropertyDecorator => Inject(filesServiceToken(name));

/**
 * The Files API as a module a NestJS application imports: routes, rules, metadata, storage and
 * the background jobs, configured entirely through options (no environment reads, no global
 * state), so several instances can live in one application.
 */
@Module({})
export class FilesModule {
  static forRoot(settings: FilesModuleSettings & FilesModuleDefinition): DynamicModule {
    const { routes, name, ...rest } = settings;
    return FilesModule.forRootAsync({ routes, name, useFactory: () => rest });
  }

  static forRootAsync(options: FilesModuleAsyncOptions): DynamicModule {
    const instance = new FilesInstance(options.name ?? 'files');
    const token = options.name === undefined ? undefined : filesServiceToken(options.name);
    const named: Provider[] = token === undefined ? [] : [{ provide: token, useExisting: FilesService }];
    const exported: NonNullable<DynamicModule['exports']> =
      token === undefined
        ? [FilesService, FilesEvents, FilesHealth, FilesMetrics, ExpirySweeper, Reconciler, FileStorage, FilesDatabase]
        : [token];
    return {
      module: FilesModule,
      imports: options.imports ?? [],
      controllers: controllersFor(options.routes),
      providers: [
        { provide: FilesInstance, useValue: instance },
        // A registry of the instance's own: importing ScheduleModule here would make every
        // instance run the host's @Cron/@Interval jobs once more. The jobs stop their intervals
        // themselves on shutdown.
        { provide: SchedulerRegistry, useClass: SchedulerRegistry },
        {
          provide: FilesModuleOptions,
          useFactory: async (...args: unknown[]) => resolveFilesOptions(await options.useFactory(...args)),
          inject: options.inject ?? [],
        },
        {
          provide: FilesDatabase,
          useFactory: (o: FilesModuleOptions) => new FilesDatabase(o.database),
          inject: [FilesModuleOptions],
        },
        {
          provide: FileStorage,
          useFactory: async (o: FilesModuleOptions) => {
            const storage = o.storage instanceof FileStorage ? o.storage : await createFileStorage(o.storage);
            return o.storageKeyPrefix === undefined ? storage : new PrefixedFileStorage(storage, o.storageKeyPrefix);
          },
          inject: [FilesModuleOptions],
        },
        {
          // Closes the storage adapter the module built itself (never one the host passed in).
          provide: OwnedStorage,
          useFactory: (o: FilesModuleOptions, storage: FileStorage) => new OwnedStorage(o.storage instanceof FileStorage ? null : storage),
          inject: [FilesModuleOptions, FileStorage],
        },
        { provide: OwnerResolver, useFactory: (o: FilesModuleOptions) => o.ownerResolver, inject: [FilesModuleOptions] },
        { provide: Clock, useFactory: (o: FilesModuleOptions) => o.clock ?? new SystemClock(), inject: [FilesModuleOptions] },
        FilesEvents,
        FilesRepository,
        FilesService,
        FileUploadService,
        UploadInterceptor,
        FilesAuthGuard,
        ExpirySweeper,
        ReconcileRepository,
        Reconciler,
        FilesMetrics,
        FilesHealth,
        ...named,
      ],
      exports: exported,
    };
  }
}

class OwnedStorage implements OnApplicationShutdown {
  constructor(private readonly storage: FileStorage | null) {}

  async onApplicationShutdown(): Promise<void> {
    await this.storage?.close();
  }
}

/** The default routes use FilesController as is; other paths get a subclass bound to them. */
function controllersFor(routes: string[] | false | undefined): Type[] {
  if (routes === false) return [];
  if (routes === undefined || sameRoutes(routes, FILES_ROUTES)) return [FilesController];
  if (routes.length === 0) throw new Error('FilesModule: routes must list at least one path, or be false');
  class RoutedFilesController extends FilesController {}
  Controller(routes)(RoutedFilesController);
  return [RoutedFilesController];
}

function sameRoutes(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((route, i) => route === b[i]);
}
