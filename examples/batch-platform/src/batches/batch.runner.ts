import { Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { FilesError, FilesErrorCode, FilesService } from 'files-api';
import { createInterface } from 'node:readline';
import { PlatformConfig } from '../platform.config';
import { isRequest, outputLine, parseRequestLine } from './batch-lines';
import { BatchStore } from './batch.store';
import type { Batch, BatchError } from './batch.types';
import { EchoModel } from './echo.model';

/** OpenAI's limit on requests in one batch. */
const MAX_REQUESTS = 50_000;
/** Validation errors reported on a failed batch (the rest are counted, not listed). */
const MAX_REPORTED_ERRORS = 100;

interface Run {
  abort: AbortController;
  done: Promise<void>;
}

/**
 * Runs batches in the background, entirely through FilesService: streams the user's input file
 * line by line (twice: validating, then in progress), and streams the answers into a
 * `batch-output` file of the same user, charged to their quota but never refused for it.
 * A batch whose input is deleted or expires while it is still being read fails, and its partial
 * output is discarded (createFile leaves nothing behind when its content stream fails).
 */
@Injectable()
export class BatchRunner implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(BatchRunner.name);
  private readonly running = new Map<string, Run>();
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    private readonly files: FilesService,
    private readonly store: BatchStore,
    private readonly model: EchoModel,
    private readonly config: PlatformConfig,
  ) {}

  onModuleInit(): void {
    this.unsubscribe.push(
      this.files.on('file.deleted', ({ ownerId, fileId }) => this.inputGone(ownerId, fileId, 'deleted')),
      this.files.on('file.expired', ({ ownerId, fileId }) => this.inputGone(ownerId, fileId, 'expired')),
    );
  }

  async onModuleDestroy(): Promise<void> {
    for (const off of this.unsubscribe) off();
    for (const run of this.running.values()) run.abort.abort(new Error('the platform is shutting down'));
    await this.idle();
  }

  /** Starts `batch` (status `validating`); its progress shows in the store. */
  start(ownerId: string, batch: Batch): void {
    const abort = new AbortController();
    const done = this.run(ownerId, batch, abort.signal)
      .catch((error: unknown) => {
        if (this.fail(batch.id, [failure(error)])) this.logger.warn(`batch ${batch.id} failed: ${(error as Error).message}`);
      })
      .finally(() => this.running.delete(batch.id));
    this.running.set(batch.id, { abort, done });
  }

  /** Resolves once no batch is running. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running.values()].map((run) => run.done));
  }

  private async run(ownerId: string, batch: Batch, signal: AbortSignal): Promise<void> {
    const { total, errors } = await this.validate(ownerId, batch, signal);
    if (errors.length > 0) {
      this.fail(batch.id, errors);
      return;
    }
    signal.throwIfAborted();
    this.store.update(batch.id, { status: 'in_progress', in_progress_at: now(), request_counts: { total, completed: 0, failed: 0 } });
    const output = await this.files.createFile({
      ownerId,
      purpose: 'batch-output',
      filename: `${batch.id}_output.jsonl`,
      content: this.answer(ownerId, batch, total, signal),
      expiresAfterSeconds: this.config.batches.outputExpiresAfterSeconds,
      // The user paid for this work when the batch started; its result is never refused for quota.
      bypassQuota: true,
    });
    this.store.update(batch.id, { status: 'completed', completed_at: now(), output_file_id: output.id });
  }

  /** Pass 1: every line is a request for the batch's endpoint, custom_ids are unique. */
  private async validate(ownerId: string, batch: Batch, signal: AbortSignal): Promise<{ total: number; errors: BatchError[] }> {
    const customIds = new Set<string>();
    const errors: BatchError[] = [];
    const report = (error: BatchError) => {
      if (errors.length < MAX_REPORTED_ERRORS) errors.push(error);
    };
    let total = 0;
    for await (const { text, line } of this.inputLines(ownerId, batch.input_file_id, signal)) {
      total += 1;
      const parsed = parseRequestLine(text, batch.endpoint);
      if (!isRequest(parsed)) report({ ...parsed, line });
      else if (customIds.has(parsed.custom_id)) {
        report({ code: 'duplicate_custom_id', message: `custom_id ${parsed.custom_id} is used more than once.`, param: 'custom_id', line });
      } else customIds.add(parsed.custom_id);
    }
    if (total === 0) report({ code: 'empty_file', message: 'The input file has no requests.', param: 'input_file_id', line: null });
    if (total > MAX_REQUESTS) {
      report({ code: 'too_many_requests', message: `A batch may have at most ${MAX_REQUESTS} requests.`, param: 'input_file_id', line: null });
    }
    return { total, errors };
  }

  /** Pass 2: the output file's lines, one per request, in input order. */
  private async *answer(ownerId: string, batch: Batch, total: number, signal: AbortSignal): AsyncGenerator<string> {
    let completed = 0;
    for await (const { text } of this.inputLines(ownerId, batch.input_file_id, signal)) {
      const request = parseRequestLine(text, batch.endpoint);
      if (!isRequest(request)) throw new Error('the input changed after validation');
      const body = await this.model.respond(batch.endpoint, request.body);
      signal.throwIfAborted();
      this.store.update(batch.id, { request_counts: { total, completed: ++completed, failed: 0 } });
      yield outputLine(request, body);
    }
    this.store.update(batch.id, { status: 'finalizing', finalizing_at: now() });
  }

  /** The input's non-blank lines, streamed from storage. */
  private async *inputLines(ownerId: string, fileId: string, signal: AbortSignal): AsyncGenerator<{ text: string; line: number }> {
    const { body } = await this.files.openContent(ownerId, fileId);
    const reader = createInterface({ input: body, crlfDelay: Infinity });
    let line = 0;
    try {
      for await (const text of reader) {
        signal.throwIfAborted();
        line += 1;
        if (text.trim() !== '') yield { text, line };
      }
    } finally {
      reader.close();
      body.destroy();
    }
  }

  /** files-api says the input left view: fail the batches still reading it. */
  private inputGone(ownerId: string, fileId: string, how: 'deleted' | 'expired'): void {
    for (const batch of this.store.readingInput(ownerId, fileId)) {
      const message = `The input file ${fileId} was ${how} before the batch finished reading it.`;
      this.fail(batch.id, [{ code: `input_file_${how}`, message, param: 'input_file_id', line: null }]);
      this.running.get(batch.id)?.abort.abort(new Error(message));
    }
  }

  private fail(id: string, errors: BatchError[]): boolean {
    return this.store.update(id, { status: 'failed', failed_at: now(), errors: { object: 'list', data: errors } });
  }
}

function failure(error: unknown): BatchError {
  if (error instanceof FilesError && error.code === FilesErrorCode.FileNotFound) {
    return { code: 'input_file_not_found', message: 'The input file no longer exists.', param: 'input_file_id', line: null };
  }
  return { code: 'internal_error', message: 'The batch could not be processed.', param: null, line: null };
}

function now(): number {
  return Math.floor(Date.now() / 1000);
}
