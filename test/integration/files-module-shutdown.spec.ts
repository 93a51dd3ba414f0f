import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Pool } from 'pg';
import { FilesModule, FilesService } from '../../src';
import { createTestBucket, createTestDatabase, type TestBucket, type TestDatabase } from '../support/backends';
import { manualStream, MiB, randomContent } from '../support/streams';

@Injectable()
class Worker {
  constructor(readonly files: FilesService) {}
}

// app.close() runs onModuleDestroy first and stops the HTTP server last (dispose). Writes in flight
// are drained in beforeApplicationShutdown and the pool closes in onApplicationShutdown, so a
// createFile (or an HTTP upload) running during app.close() still commits (or cleans up).
describe('app.close() with a createFile in flight', () => {
  let db: TestDatabase;
  let bucket: TestBucket;
  beforeAll(async () => {
    [db, bucket] = await Promise.all([createTestDatabase(), createTestBucket()]);
  });
  afterAll(async () => {
    await db?.drop();
    await bucket?.drop();
  });

  it('lets the write finish before the pool closes, leaving no pending row', async () => {
    @Module({
      imports: [FilesModule.forRoot({ routes: false, jobs: false, database: { url: db.url }, storage: bucket.settings })],
      providers: [Worker],
    })
    class WorkerModule {}
    const app = await NestFactory.createApplicationContext(WorkerModule, { logger: false });
    const { stream, feed } = manualStream();
    const write = app
      .get(Worker)
      .files.createFile({ ownerId: 'o', purpose: 'batch-output', filename: 'o', content: stream })
      .then(
        (file) => ({ stored: file.bytes }),
        (error: Error) => ({ failed: `${error.name}: ${error.message}` }),
      );
    await feed(randomContent(MiB));
    const closed = app.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
    await feed(randomContent(MiB));
    stream.end();
    expect(await write).toEqual({ stored: 2 * MiB });
    await closed;
    const pool = new Pool({ connectionString: db.url, max: 1 });
    try {
      expect((await pool.query(`SELECT state::text FROM files`)).rows).toEqual([{ state: 'ready' }]);
    } finally {
      await pool.end();
    }
  });
});
