import { S3Client } from '@aws-sdk/client-s3';
import { Injectable, Module } from '@nestjs/common';
import { Interval, ScheduleModule } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FilesModule, FilesService } from '../../src';
import { createTestBucket, createTestDatabase, type TestBucket, type TestDatabase } from '../support/backends';
import { schedulerRegistries } from '../support/host-app';

/** A host's own scheduled job. */
@Injectable()
class HostJob {
  ticks = 0;
  @Interval('host-job', 200)
  tick(): void {
    this.ticks += 1;
  }
}

describe('FilesModule in a host', () => {
  let dbs: TestDatabase[] = [];
  let dir: string;

  beforeAll(async () => {
    dbs = await Promise.all([createTestDatabase(), createTestDatabase()]);
    dir = await mkdtemp(path.join(tmpdir(), 'files-api-bugs-'));
  });
  afterAll(async () => {
    await Promise.all(dbs.map((db) => db.drop()));
    await rm(dir, { recursive: true, force: true });
  });

  // Nest 12 keys dynamic modules by reference: a `ScheduleModule.forRoot()` inside each FilesModule
  // would be another explorer scheduling every @Interval/@Cron of the whole app again. FilesModule
  // keeps a SchedulerRegistry of its own instead and imports no ScheduleModule.
  it("runs a host's own @Interval job once per tick; each instance's jobs stay in its own registry", async () => {
    @Module({
      imports: [
        ScheduleModule.forRoot(),
        ...dbs.map((db, i) =>
          FilesModule.forRoot({
            name: `i${i}`,
            routes: false,
            database: { url: db.url, poolMax: 2 },
            storage: { driver: 'fs', dir: path.join(dir, String(i)) },
          }),
        ),
      ],
      providers: [HostJob],
    })
    class Host {}
    const app = (await Test.createTestingModule({ imports: [Host] }).compile()).createNestApplication({ logger: false });
    await app.init();
    try {
      await new Promise((resolve) => setTimeout(resolve, 1100));
      expect(app.get(HostJob).ticks).toBeLessThanOrEqual(6); // 5 ticks of 200 ms in 1.1 s
      expect(schedulerRegistries(app).sort()).toEqual([['host-job'], ['i0:expiry-sweep', 'i0:reconcile'], ['i1:expiry-sweep', 'i1:reconcile']]);
    } finally {
      await app.close();
    }
  });

  // The S3 client FilesModule builds from `{ driver: 's3' }` settings (and its keep-alive sockets)
  // is destroyed when the app closes.
  describe('with S3 storage settings', () => {
    let bucket: TestBucket;
    beforeAll(async () => {
      bucket = await createTestBucket();
    });
    afterAll(async () => {
      await bucket?.drop();
    });

    it('destroys the S3 client it built when the app closes', async () => {
      const destroyed = jest.spyOn(S3Client.prototype, 'destroy');
      @Module({
        imports: [FilesModule.forRoot({ routes: false, jobs: false, database: { url: dbs[0].url, poolMax: 2 }, storage: bucket.settings })],
      })
      class Host {}
      const app = (await Test.createTestingModule({ imports: [Host] }).compile()).createNestApplication({ logger: false });
      await app.init();
      await app.get(FilesService).createFile({ ownerId: 'o', purpose: 'batch', filename: 'f', content: 'x' });
      await app.close();
      try {
        expect(destroyed).toHaveBeenCalledTimes(1);
      } finally {
        destroyed.mockRestore();
      }
    });
  });
});
