import { Module, type DynamicModule } from '@nestjs/common';
import { FilesModule, type FilesModuleSettings } from 'files-api';
import { PlatformAuthGuard } from './auth/platform-auth.guard';
import { PlatformUsers } from './auth/platform-users';
import { BatchRunner } from './batches/batch.runner';
import { BatchStore } from './batches/batch.store';
import { BatchesController } from './batches/batches.controller';
import { BatchesService } from './batches/batches.service';
import { EchoModel } from './batches/echo.model';
import { PlatformConfig } from './platform.config';

/** What the platform's parts share: its configuration and its users. */
@Module({})
class PlatformCoreModule {
  static forRoot(config: PlatformConfig): DynamicModule {
    return {
      module: PlatformCoreModule,
      providers: [{ provide: PlatformConfig, useValue: config }, PlatformUsers],
      exports: [PlatformConfig, PlatformUsers],
    };
  }
}

/**
 * The batch platform: OpenAI's Files API (files-api's FilesModule, with the platform's users as
 * owners) and Batches API (the platform's own) under one `/v1`.
 */
@Module({})
export class PlatformModule {
  static forRoot(config: PlatformConfig): DynamicModule {
    const core = PlatformCoreModule.forRoot(config);
    return {
      module: PlatformModule,
      imports: [
        core,
        FilesModule.forRootAsync({
          imports: [core],
          inject: [PlatformConfig, PlatformUsers],
          useFactory: (platform: PlatformConfig, users: PlatformUsers): FilesModuleSettings => ({
            database: { url: platform.databaseUrl },
            storage: platform.storage,
            // The platform's tokens, not files-api API keys: a user id is a files-api owner.
            ownerResolver: (request) => users.userOf(request),
            limits: { quotaBytesPerOwner: platform.quotaBytesPerUser },
            jobs: platform.filesJobs,
          }),
          // Only the OpenAI base path (files-api also serves /v1/openai/files by default).
          routes: ['v1/files'],
        }),
      ],
      controllers: [BatchesController],
      providers: [BatchesService, BatchStore, BatchRunner, EchoModel, PlatformAuthGuard],
    };
  }
}
