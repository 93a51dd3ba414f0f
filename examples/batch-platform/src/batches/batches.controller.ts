import { Body, Controller, Get, HttpCode, Param, Post, UseFilters, UseGuards } from '@nestjs/common';
import { CurrentUser, PlatformAuthGuard } from '../auth/platform-auth.guard';
import { PlatformExceptionFilter } from '../platform-api.error';
import type { Batch } from './batch.types';
import { BatchesService } from './batches.service';

@Controller('v1/batches')
@UseGuards(PlatformAuthGuard)
@UseFilters(PlatformExceptionFilter)
export class BatchesController {
  constructor(private readonly batches: BatchesService) {}

  @Post()
  @HttpCode(200)
  create(@CurrentUser() user: string, @Body() body: unknown): Promise<Batch> {
    return this.batches.create(user, body);
  }

  @Get(':id')
  retrieve(@CurrentUser() user: string, @Param('id') id: string): Batch {
    return this.batches.retrieve(user, id);
  }
}
