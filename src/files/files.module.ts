import { DynamicModule, Module, type ModuleMetadata } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { Clock, SystemClock } from '../common/clock';
import { FilesDatabase } from '../database/files-database';
import { FilesAuthGuard } from './auth/files-auth.guard';
import { OwnerResolver } from './auth/owner-resolver';
import { ExpirySweeper } from './expiry/expiry.sweeper';
import { FilesController } from './files.controller';
import { FilesHealth } from './files.health';
import { FilesMetrics } from './files.metrics';
import { ReconcileRepository } from './reconcile/reconcile.repository';
import { Reconciler } from './reconcile/reconciler';
import { FilesModuleOptions } from './files.options';
import { FilesRepository } from './files.repository';
import { FilesService } from './files.service';
import { FileStorage } from './storage/file-storage';
import { createFileStorage } from './storage/storage.factory';
import { FileUploadService } from './upload/file-upload.service';
import { UploadInterceptor } from './upload/upload.interceptor';

export interface FilesModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  inject?: any[];
  useFactory: (...args: any[]) => FilesModuleOptions | Promise<FilesModuleOptions>;
}

/**
 * The Files API as a module a NestJS application imports: controller, rules, metadata, storage
 * and the expiry job, configured entirely through FilesModuleOptions (no environment reads).
 */
@Module({})
export class FilesModule {
  static forRoot(options: FilesModuleOptions): DynamicModule {
    return FilesModule.forRootAsync({ useFactory: () => options });
  }

  static forRootAsync(options: FilesModuleAsyncOptions): DynamicModule {
    return {
      module: FilesModule,
      imports: [...(options.imports ?? []), ScheduleModule.forRoot()],
      controllers: [FilesController],
      providers: [
        { provide: FilesModuleOptions, useFactory: options.useFactory, inject: options.inject ?? [] },
        {
          provide: FilesDatabase,
          useFactory: (o: FilesModuleOptions) => new FilesDatabase(o.database),
          inject: [FilesModuleOptions],
        },
        {
          provide: FileStorage,
          useFactory: (o: FilesModuleOptions) => (o.storage instanceof FileStorage ? o.storage : createFileStorage(o.storage)),
          inject: [FilesModuleOptions],
        },
        { provide: OwnerResolver, useFactory: (o: FilesModuleOptions) => o.ownerResolver, inject: [FilesModuleOptions] },
        { provide: Clock, useClass: SystemClock },
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
      ],
      exports: [FilesService, FilesHealth, FilesMetrics, ExpirySweeper, Reconciler, FileStorage, FilesDatabase],
    };
  }
}
