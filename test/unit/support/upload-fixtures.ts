import { Logger } from '@nestjs/common';
import { Readable } from 'node:stream';
import { Clock } from '../../../src/common/clock';
import { FilesEvents } from '../../../src/files/files.events';
import type { FilesLimits, FilesModuleOptions } from '../../../src/files/files.options';
import { FilesService } from '../../../src/files/files.service';
import { FileUploadService } from '../../../src/files/upload/file-upload.service';
import { MemoryFileStorage } from '../../support/fakes/memory-file-storage';
import { MemoryFilesRepository } from '../../support/fakes/memory-files-repository';

export const T0 = new Date(Date.UTC(2026, 10, 26, 12, 0, 0));

/** A clock that stands still until the test moves it. */
export class ManualClock extends Clock {
  private current: number;
  constructor(start: Date = T0) {
    super();
    this.current = start.getTime();
  }
  now(): Date {
    return new Date(this.current);
  }
  advance(ms: number): void {
    this.current += ms;
  }
}

export const DEFAULT_TEST_LIMITS: FilesLimits = {
  maxBatchFileBytes: 1000,
  maxFileBytes: 2000,
  quotaBytesPerOwner: 10_000,
  maxConcurrentUploads: 10,
  maxConcurrentUploadsPerOwner: 5,
};

/** FileUploadService and FilesService over in-memory storage and repository, with a manual clock. */
export function filesHarness(limits: Partial<FilesLimits> = {}) {
  const storage = new MemoryFileStorage();
  const repository = new MemoryFilesRepository();
  const clock = new ManualClock();
  const options = {
    limits: { ...DEFAULT_TEST_LIMITS, ...limits },
    expiry: { sweepIntervalSeconds: 0, batchSize: 100 },
    reconcile: { intervalSeconds: 0, staleAfterSeconds: 120 },
  } as unknown as FilesModuleOptions;
  const events = new FilesEvents();
  const uploads = new FileUploadService(repository.asRepository(), storage, clock, options, events);
  const files = new FilesService(repository.asRepository(), storage, uploads, clock, options, events);
  return { storage, repository, clock, uploads, files, options, events };
}

/** A readable of these chunks, as a multipart file part would deliver them. */
export function partOf(...chunks: (string | Buffer)[]): Readable {
  return Readable.from(chunks.map((c) => Buffer.from(c)));
}

/** Silences (and records) Nest logger output for the current test file. */
export function captureLogs() {
  const spies = new Map<string, jest.SpyInstance>();
  beforeEach(() => {
    for (const level of ['error', 'warn', 'log', 'debug'] as const) {
      spies.set(level, jest.spyOn(Logger.prototype, level).mockImplementation(() => undefined));
    }
  });
  afterEach(() => spies.forEach((spy) => spy.mockRestore()));
  return {
    /** Every message logged at `level` so far in this test, as text. */
    messages: (level: 'error' | 'warn' | 'log' | 'debug') => (spies.get(level)?.mock.calls ?? []).map((c) => JSON.stringify(c)),
  };
}
