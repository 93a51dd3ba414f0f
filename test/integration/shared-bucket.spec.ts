import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FilesModule, FilesService, InjectFilesService, Reconciler } from '../../src';
import { storageKeyFor } from '../../src/files/storage/storage-key';
import { TestClock } from '../support/app';
import { createTestBucket, createTestDatabase, listKeys, type TestBucket, type TestDatabase } from '../support/backends';

@Injectable()
class Host {
  constructor(
    readonly a: FilesService,
    readonly reconcilerOfA: Reconciler,
    @InjectFilesService('b') readonly b: FilesService,
  ) {}
}

// Each instance's reconciler deletes objects under its keys that its own database does not know.
// Two instances (two databases) sharing a bucket therefore need distinct storageKeyPrefix values:
// then neither sees the other's objects at all.
describe('two instances over one bucket, each under its own storageKeyPrefix', () => {
  let dbs: TestDatabase[];
  let bucket: TestBucket;
  let app: INestApplicationContext;

  beforeAll(async () => {
    [dbs, bucket] = await Promise.all([Promise.all([createTestDatabase(), createTestDatabase()]), createTestBucket()]);
  });
  afterAll(async () => {
    await app?.close();
    await Promise.all(dbs.map((db) => db.drop()));
    await bucket?.drop();
  });

  it("keeps each instance's objects under its prefix, and one reconciler never deletes the other's files", async () => {
    const clock = new TestClock();
    @Module({
      imports: [
        FilesModule.forRoot({ routes: false, jobs: false, database: { url: dbs[0].url }, storage: bucket.settings, storageKeyPrefix: 'a/', clock }),
        FilesModule.forRoot({ name: 'b', routes: false, jobs: false, database: { url: dbs[1].url }, storage: bucket.settings, storageKeyPrefix: 'b/' }),
      ],
      providers: [Host],
    })
    class HostModule {}
    app = await NestFactory.createApplicationContext(HostModule, { logger: false });
    const host = app.get(Host);
    const mine = [];
    for (let i = 0; i < 3; i++) mine.push(await host.a.createFile({ ownerId: 'o', purpose: 'batch', filename: 'a', content: 'a' }));
    const theirs = await host.b.createFile({ ownerId: 'o', purpose: 'batch', filename: 'b', content: 'b' });
    expect((await listKeys(bucket.client, bucket.settings.bucket)).sort()).toEqual(
      [...mine.map((f) => `a/${storageKeyFor(f.id)}`), `b/${storageKeyFor(theirs.id)}`].sort(),
    );
    clock.advance(3_600_000);

    const report = await host.reconcilerOfA.reconcile({ repair: true });

    expect(report.orphanObjects).toBe(0);
    expect(await listKeys(bucket.client, bucket.settings.bucket)).toContain(`b/${storageKeyFor(theirs.id)}`);
    expect((await host.b.openContent('o', theirs.id)).length).toBe(1);
    for (const file of mine) expect((await host.a.openContent('o', file.id)).length).toBe(1);
  });
});
