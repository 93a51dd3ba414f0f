import { Injectable } from '@nestjs/common';
import { FilesError, FilesErrorCode, FilesService, type FileObject } from 'files-api';
import { randomBytes } from 'node:crypto';
import { PlatformApiError } from '../platform-api.error';
import { BatchRunner } from './batch.runner';
import { BatchStore } from './batch.store';
import { BATCH_ENDPOINTS, type Batch, type BatchEndpoint } from './batch.types';

const DAY_SECONDS = 86_400;

/** OpenAI's Batches API over the platform's users' files. */
@Injectable()
export class BatchesService {
  constructor(
    private readonly files: FilesService,
    private readonly store: BatchStore,
    private readonly runner: BatchRunner,
  ) {}

  async create(ownerId: string, body: unknown): Promise<Batch> {
    const params = parseCreateParams(body);
    const input = await this.inputFile(ownerId, params.input_file_id);
    if (input.purpose !== 'batch') {
      throw PlatformApiError.invalid('input_file_id', `File ${input.id} has purpose ${input.purpose}; a batch input needs purpose batch.`);
    }
    const createdAt = Math.floor(Date.now() / 1000);
    const batch = this.store.add(ownerId, {
      id: `batch_${randomBytes(12).toString('hex')}`,
      object: 'batch',
      endpoint: params.endpoint,
      errors: null,
      input_file_id: input.id,
      completion_window: '24h',
      status: 'validating',
      output_file_id: null,
      error_file_id: null,
      created_at: createdAt,
      in_progress_at: null,
      expires_at: createdAt + DAY_SECONDS,
      finalizing_at: null,
      completed_at: null,
      failed_at: null,
      expired_at: null,
      cancelling_at: null,
      cancelled_at: null,
      request_counts: { total: 0, completed: 0, failed: 0 },
      metadata: params.metadata,
    });
    this.runner.start(ownerId, batch);
    return batch;
  }

  retrieve(ownerId: string, id: string): Batch {
    const batch = this.store.find(ownerId, id);
    if (batch === undefined) throw PlatformApiError.notFound(`No such Batch object: ${id}`);
    return batch;
  }

  /** The user's input file; another user's file is as unknown as one that never existed. */
  private async inputFile(ownerId: string, fileId: string): Promise<FileObject> {
    try {
      return await this.files.retrieve(ownerId, fileId);
    } catch (error) {
      if (error instanceof FilesError && error.code === FilesErrorCode.FileNotFound) {
        throw PlatformApiError.notFound(`No such File object: ${fileId}`, 'input_file_id');
      }
      throw error;
    }
  }
}

interface CreateBatchParams {
  input_file_id: string;
  endpoint: BatchEndpoint;
  metadata: Record<string, string> | null;
}

function parseCreateParams(body: unknown): CreateBatchParams {
  const params = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  for (const name of ['input_file_id', 'endpoint', 'completion_window']) {
    if (params[name] === undefined) throw PlatformApiError.missing(name);
  }
  if (typeof params.input_file_id !== 'string') throw PlatformApiError.invalid('input_file_id', 'input_file_id must be a string.');
  if (!BATCH_ENDPOINTS.includes(params.endpoint as BatchEndpoint)) {
    throw PlatformApiError.invalid('endpoint', `endpoint must be one of: ${BATCH_ENDPOINTS.join(', ')}.`);
  }
  if (params.completion_window !== '24h') throw PlatformApiError.invalid('completion_window', 'completion_window must be 24h.');
  const metadata = params.metadata ?? null;
  if (metadata !== null && (typeof metadata !== 'object' || Object.values(metadata).some((v) => typeof v !== 'string'))) {
    throw PlatformApiError.invalid('metadata', 'metadata must be an object of strings.');
  }
  return {
    input_file_id: params.input_file_id,
    endpoint: params.endpoint as BatchEndpoint,
    metadata: metadata as Record<string, string> | null,
  };
}
