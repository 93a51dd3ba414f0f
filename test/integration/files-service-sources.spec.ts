import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Readable } from 'node:stream';
import { FilesErrorCode, FilesModule, FilesService } from '../../src';
import { createTestBucket, createTestDatabase, type TestBucket, type TestDatabase } from '../support/backends';
import { newOwner } from '../support/files-db';
import { filesErrorOf } from '../support/host-app';

@Injectable()
class Worker {
  constructor(readonly files: FilesService) {}
}

describe('FilesService.createFile and the host\'s source stream', () => {
  let db: TestDatabase;
  let bucket: TestBucket;
  let app: INestApplicationContext;
  let files: FilesService;

  beforeAll(async () => {
    [db, bucket] = await Promise.all([createTestDatabase(), createTestBucket()]);
    @Module({
      imports: [
        FilesModule.forRoot({
          routes: false,
          jobs: false,
          database: { url: db.url, poolMax: 2 },
          storage: bucket.settings,
          limits: { maxBatchFileBytes: 1000, maxFileBytes: 2000, quotaBytesPerOwner: 5000 },
        }),
      ],
      providers: [Worker],
    })
    class WorkerModule {}
    app = await NestFactory.createApplicationContext(WorkerModule, { logger: false });
    files = app.get(Worker).files;
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
    await bucket?.drop();
  });

  /** An endless source of 1 KiB chunks (a subprocess's output, a socket) that counts what was pulled. */
  function endlessSource() {
    const counter = { pulled: 0 };
    const stream = Readable.from(
      (async function* () {
        for (;;) {
          counter.pulled += 1;
          if (counter.pulled % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
          yield Buffer.alloc(1024, 0x61);
        }
      })(),
    );
    return { stream, counter };
  }

  // A refused multipart part keeps flowing to its end (its form parser must finish), but a host's
  // own source is destroyed at the refusal: an endless or huge source must not keep createFile
  // (or the source) running.
  it.each([
    ['the size limit', FilesErrorCode.FileTooLarge],
    ['the quota', FilesErrorCode.QuotaExceeded],
  ])('rejects promptly, and stops reading the source, once %s refuses it', async (_, code) => {
    const owner = newOwner();
    if (code === FilesErrorCode.QuotaExceeded) {
      for (let i = 0; i < 2; i++) await files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'o', content: Buffer.alloc(2000) });
    }
    const { stream, counter } = endlessSource();
    try {
      const outcome = await Promise.race([
        filesErrorOf(files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'o', content: stream })),
        new Promise<'still pending'>((resolve) => setTimeout(() => resolve('still pending'), 3000)),
      ]);
      expect(outcome === 'still pending' ? outcome : outcome.code).toBe(code);
      const pulled = counter.pulled;
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(counter.pulled - pulled).toBe(0);
      expect(stream.destroyed).toBe(true);
    } finally {
      stream.destroy();
    }
  });
});
