import {
  All,
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Param,
  Post,
  Query,
  Res,
  UploadedFile,
  UseFilters,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import type { Response } from 'express';
import { OpenAiExceptionFilter } from '../common/openai-exception.filter';
import { FilesAuthGuard } from './auth/files-auth.guard';
import { Owner } from './auth/owner';
import { sendContent } from './download';
import type { FileDeleted, FileList, FileObject } from './file.mapper';
import type { ListQuery } from './file.types';
import { FilesError, FilesErrorCode } from './files.errors';
import { FilesService } from './files.service';
import { ListQueryPipe } from './list-query';
import type { UploadedFilePart } from './upload/file-storage.engine';
import { UploadInterceptor } from './upload/upload.interceptor';
import { FILES_ROUTES } from './files.routes';

@Controller(FILES_ROUTES)
@UseGuards(FilesAuthGuard)
@UseFilters(OpenAiExceptionFilter)
export class FilesController {
  constructor(private readonly files: FilesService) {}

  @Post()
  @HttpCode(200)
  @UseInterceptors(UploadInterceptor)
  create(
    @UploadedFile() part: UploadedFilePart | undefined,
    @Body() fields: Record<string, unknown>,
  ): Promise<FileObject> {
    return this.files.completeUpload(part, fields ?? {});
  }

  @Get()
  list(@Owner() owner: string, @Query(ListQueryPipe) query: ListQuery): Promise<FileList> {
    return this.files.list(owner, query);
  }

  @Get(':id')
  retrieve(@Owner() owner: string, @Param('id') id: string): Promise<FileObject> {
    return this.files.retrieve(owner, id);
  }

  @Get(':id/content')
  async content(
    @Owner() owner: string,
    @Param('id') id: string,
    @Headers('range') range: string | undefined,
    @Res() response: Response,
  ): Promise<void> {
    await sendContent(response, await this.files.openDownload(owner, id, range));
  }

  @Delete(':id')
  delete(@Owner() owner: string, @Param('id') id: string): Promise<FileDeleted> {
    return this.files.delete(owner, id);
  }

  // Known paths with an unsupported method answer 405 (with Allow), not "unknown URL".
  @All()
  collectionMethods(@Res() response: Response): never {
    throw methodNotAllowed(response, 'GET, POST');
  }

  @All(':id')
  fileMethods(@Res() response: Response): never {
    throw methodNotAllowed(response, 'GET, DELETE');
  }

  @All(':id/content')
  contentMethods(@Res() response: Response): never {
    throw methodNotAllowed(response, 'GET');
  }
}

function methodNotAllowed(response: Response, allow: string): FilesError {
  response.setHeader('Allow', allow);
  return new FilesError(FilesErrorCode.MethodNotAllowed, `Method not allowed. Allowed: ${allow}.`);
}
