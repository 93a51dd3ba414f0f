import { SchedulerRegistry } from '@nestjs/schedule';
import type { FilesDatabase } from '../../src/database/files-database';
import { DatabaseUnavailableError } from '../../src/files/files.errors';
import { ExpirySweeper } from '../../src/files/expiry/expiry.sweeper';
import { FilesMetrics } from '../../src/files/files.metrics';
import { FilesEvents } from '../../src/files/files.events';
import { FilesInstance } from '../../src/files/files.instance';
import type { FilesModuleOptions } from '../../src/files/files.options';
import { FilesRepository, type Tombstone } from '../../src/files/files.repository';
import { S3FileStorage } from '../../src/files/storage/s3-file-storage';
import { storageKeyFor } from '../../src/files/storage/storage-key';
import { TestClock } from '../support/app';
import { createTestBucket, createTestDatabase, type TestBucket, type TestDatabase } from '../support/backends';
import { FaultyStorage } from '../support/faulty-storage';
import { HOUR_MS, ledger, newOwner, openFilesDatabase, seedFile, stateOf, type SeedOptions, type SeededFile } from '../support/files-db';
import { randomContent, streamOf } from '../support/streams';

const STALE_SECONDS = 120;

/**
 * Records every batch the sweeper asks for, to prove the batches stay bounded, and every set of
 * rows it deletes; `failRowDeletes` makes the next row deletes fail as if PostgreSQL were down.
 */
class RecordingRepository extends FilesRepository {
  readonly batches: { limit: number; taken: number }[] = [];
  readonly rowDeletes: string[][] = [];
  failRowDeletes = 0;
  override async tombstoneExpired(limit: number, now: Date): Promise<Tombstone[]> {
    const taken = await super.tombstoneExpired(limit, now);
    this.batches.push({ limit, taken: taken.length });
    return taken;
  }
  override async deleteTombstones(uuids: readonly string[]): Promise<number> {
    this.rowDeletes.push([...uuids]);
    if (this.failRowDeletes > 0) {
      this.failRowDeletes -= 1;
      throw new DatabaseUnavailableError('injected: database gone while deleting tombstones');
    }
    return super.deleteTombstones(uuids);
  }
}

describe(ExpirySweeper.name, () => {
  let bucket: TestBucket;
  let s3: S3FileStorage;
  beforeAll(async () => {
    bucket = await createTestBucket();
    s3 = new S3FileStorage(bucket.settings);
  });
  afterAll(async () => {
    s3?.close();
    await bucket?.drop();
  });

  let database: TestDatabase;
  let clock: TestClock;
  const pools: FilesDatabase[] = [];
  beforeEach(async () => {
    database = await createTestDatabase();
    clock = new TestClock();
  });
  afterEach(async () => {
    for (const pool of pools.splice(0)) await pool.close();
    await database.drop();
  });

  /** One replica's sweeper: its own pool, repository and (wrapped, real) storage. */
  function replica(options: { batchSize?: number; sweepIntervalSeconds?: number } = {}) {
    const db = openFilesDatabase(database, 4);
    pools.push(db);
    const repository = new RecordingRepository(db);
    const storage = new FaultyStorage(s3);
    const moduleOptions = {
      expiry: { sweepIntervalSeconds: options.sweepIntervalSeconds ?? 0, batchSize: options.batchSize ?? 100 },
      reconcile: { intervalSeconds: 0, staleAfterSeconds: STALE_SECONDS },
    } as Pick<FilesModuleOptions, 'expiry' | 'reconcile'> as FilesModuleOptions;
    const scheduler = new SchedulerRegistry();
    const metrics = new FilesMetrics();
    const events = new FilesEvents();
    const sweeper = new ExpirySweeper(repository, storage, db, clock, moduleOptions, scheduler, metrics, events, new FilesInstance('files'));
    return { db, repository, storage, scheduler, metrics, sweeper, events };
  }

  /** A committed file with its bytes in the bucket. */
  async function storedFile(repository: FilesRepository, owner: string, options: SeedOptions = {}): Promise<SeededFile> {
    const file = await seedFile(repository, owner, { createdAtMs: clock.now().getTime(), ...options });
    await s3.put(storageKeyFor(file.id), streamOf(randomContent(file.bytes)));
    return file;
  }

  const bytesExist = async (file: SeededFile) => (await s3.head(storageKeyFor(file.id))) !== null;

  it("removes expired files' bytes and rows, releases usage, and leaves live files alone", async () => {
    const { sweeper, repository, db } = replica();
    const [alice, bob] = [newOwner('alice'), newOwner('bob')];
    const expired = [
      await storedFile(repository, alice, { bytes: 10 }),
      await storedFile(repository, alice, { bytes: 20 }),
      await storedFile(repository, bob, { bytes: 30 }),
    ];
    const live = [
      await storedFile(repository, alice, { bytes: 5, lifetimeMs: 10 * HOUR_MS }),
      await storedFile(repository, bob, { bytes: 6, lifetimeMs: 10 * HOUR_MS }),
    ];
    clock.advance(2 * HOUR_MS);

    expect(await sweeper.sweep()).toEqual({ ran: true, expired: 3, purged: 3, failed: 0 });
    for (const file of expired) {
      expect(await bytesExist(file)).toBe(false);
      expect(await stateOf(db, file.uuid)).toBeNull();
    }
    for (const file of live) {
      expect(await bytesExist(file)).toBe(true);
      expect(await stateOf(db, file.uuid)).toBe('ready');
    }
    expect(await ledger(db, alice)).toEqual({ used: 5, readySum: 5 });
    expect(await ledger(db, bob)).toEqual({ used: 6, readySum: 6 });
    // Safe to run again: nothing left to do.
    expect(await sweeper.sweep()).toEqual({ ran: true, expired: 0, purged: 0, failed: 0 });
  });

  it('works through a backlog in batches of at most batchSize', async () => {
    const { sweeper, repository, db } = replica({ batchSize: 3 });
    const owner = newOwner();
    const files = await Promise.all(Array.from({ length: 10 }, () => storedFile(repository, owner, { bytes: 1 })));
    clock.advance(2 * HOUR_MS);
    expect(await sweeper.sweep()).toEqual({ ran: true, expired: 10, purged: 10, failed: 0 });
    expect(repository.batches).toEqual([
      { limit: 3, taken: 3 },
      { limit: 3, taken: 3 },
      { limit: 3, taken: 3 },
      { limit: 3, taken: 1 },
    ]);
    for (const file of files) expect(await bytesExist(file)).toBe(false);
    expect(await ledger(db, owner)).toEqual({ used: 0, readySum: 0 });
  });

  it('bounds one run and leaves the rest of a huge backlog to the next', async () => {
    const { sweeper, repository, db } = replica({ batchSize: 1 });
    const owner = newOwner();
    // Rows only: deleting a key that holds no bytes is a no-op for storage.
    await Promise.all(Array.from({ length: 53 }, (_, i) => seedFile(repository, owner, { bytes: 1, createdAtMs: clock.now().getTime() + i })));
    clock.advance(2 * HOUR_MS);
    const first = await sweeper.sweep();
    expect(first.expired).toBeLessThan(53);
    expect(first.expired).toBeGreaterThan(0);
    expect(first.purged).toBe(first.expired);
    expect(await sweeper.sweep()).toMatchObject({ ran: true, expired: 53 - first.expired, failed: 0 });
    expect(repository.batches.every((b) => b.limit === 1 && b.taken <= 1)).toBe(true);
    expect(await ledger(db, owner)).toEqual({ used: 0, readySum: 0 });
  });

  it('keeps going when storage fails on one file, and retries that file on a later run', async () => {
    const { sweeper, repository, storage, db, metrics } = replica();
    const owner = newOwner();
    const files = [];
    for (let i = 0; i < 3; i++) files.push(await storedFile(repository, owner, { bytes: 10, createdAtMs: clock.now().getTime() + i }));
    const unlucky = files[1];
    storage.failingDeletes.add(storageKeyFor(unlucky.id));
    clock.advance(2 * HOUR_MS);

    expect(await sweeper.sweep()).toEqual({ ran: true, expired: 3, purged: 2, failed: 1 });
    expect(metrics.value('expiry_failures')).toBe(1);
    for (const file of [files[0], files[2]]) expect(await stateOf(db, file.uuid)).toBeNull();
    // Out of view and off the usage already; only its bytes and tombstone remain.
    expect(await stateOf(db, unlucky.uuid)).toBe('deleting');
    expect(await bytesExist(unlucky)).toBe(true);
    expect(await ledger(db, owner)).toEqual({ used: 0, readySum: 0 });

    storage.failingDeletes.clear();
    clock.advance((STALE_SECONDS + 1) * 1000);
    expect(await sweeper.sweep()).toEqual({ ran: true, expired: 0, purged: 1, failed: 0 });
    expect(await stateOf(db, unlucky.uuid)).toBeNull();
    expect(await bytesExist(unlucky)).toBe(false);
    expect([metrics.value('expiry_files_expired'), metrics.value('expiry_files_purged')]).toEqual([3, 3]);
    expect(await ledger(db, owner)).toEqual({ used: 0, readySum: 0 });
  });

  it('deletes each batch with one storage call and one row delete', async () => {
    const { sweeper, repository, storage } = replica({ batchSize: 4 });
    const owner = newOwner();
    const files = await Promise.all(Array.from({ length: 10 }, () => storedFile(repository, owner, { bytes: 1 })));
    clock.advance(2 * HOUR_MS);
    expect(await sweeper.sweep()).toEqual({ ran: true, expired: 10, purged: 10, failed: 0 });
    expect(storage.deleteManyCalls.map((keys) => keys.length)).toEqual([4, 4, 2]);
    expect(repository.rowDeletes.map((uuids) => uuids.length)).toEqual([4, 4, 2]);
    expect(storage.deleteManyCalls.flat().sort()).toEqual(files.map((f) => storageKeyFor(f.id)).sort());
    for (const file of files) expect(await bytesExist(file)).toBe(false);
  });

  it('leaves exactly the files a partial batch delete failed on for a later run', async () => {
    const { sweeper, repository, storage, db, metrics } = replica({ batchSize: 10 });
    const owner = newOwner();
    const files: SeededFile[] = [];
    for (let i = 0; i < 10; i++) files.push(await storedFile(repository, owner, { bytes: 10, createdAtMs: clock.now().getTime() + i }));
    const unlucky = [files[2], files[5], files[9]];
    for (const file of unlucky) storage.failingDeletes.add(storageKeyFor(file.id));
    clock.advance(2 * HOUR_MS);

    // One DeleteObjects for the whole batch, refused for three of its keys.
    expect(await sweeper.sweep()).toEqual({ ran: true, expired: 10, purged: 7, failed: 3 });
    expect(storage.deleteManyCalls).toHaveLength(1);
    expect(repository.rowDeletes.map((uuids) => [...uuids].sort())).toEqual([
      files.filter((f) => !unlucky.includes(f)).map((f) => f.uuid).sort(),
    ]);
    expect(metrics.value('expiry_failures')).toBe(3);
    for (const file of files) {
      const failed = unlucky.includes(file);
      expect(await stateOf(db, file.uuid)).toBe(failed ? 'deleting' : null);
      expect(await bytesExist(file)).toBe(failed);
    }
    expect(await ledger(db, owner)).toEqual({ used: 0, readySum: 0 });

    // Not retried while a delete could still be in flight (the tombstones are fresh)…
    storage.failingDeletes.clear();
    expect(await sweeper.sweep()).toEqual({ ran: true, expired: 0, purged: 0, failed: 0 });
    // …then exactly those three, once stale.
    clock.advance((STALE_SECONDS + 1) * 1000);
    expect(await sweeper.sweep()).toEqual({ ran: true, expired: 0, purged: 3, failed: 0 });
    expect(storage.deleteManyCalls.at(-1)!.sort()).toEqual(unlucky.map((f) => storageKeyFor(f.id)).sort());
    for (const file of unlucky) {
      expect(await stateOf(db, file.uuid)).toBeNull();
      expect(await bytesExist(file)).toBe(false);
    }
    expect([metrics.value('expiry_files_expired'), metrics.value('expiry_files_purged')]).toEqual([10, 10]);
  });

  it('keeps the rows when their delete fails after the bytes are gone, and finishes them later', async () => {
    const { sweeper, repository, db } = replica();
    const owner = newOwner();
    const files = await Promise.all(Array.from({ length: 3 }, () => storedFile(repository, owner, { bytes: 5 })));
    repository.failRowDeletes = 1;
    clock.advance(2 * HOUR_MS);

    expect(await sweeper.sweep()).toEqual({ ran: true, expired: 3, purged: 0, failed: 3 });
    for (const file of files) {
      expect(await bytesExist(file)).toBe(false);
      expect(await stateOf(db, file.uuid)).toBe('deleting');
    }
    expect(await ledger(db, owner)).toEqual({ used: 0, readySum: 0 });

    clock.advance((STALE_SECONDS + 1) * 1000);
    // Deleting the (already missing) bytes again is harmless; then the rows go.
    expect(await sweeper.sweep()).toEqual({ ran: true, expired: 0, purged: 3, failed: 0 });
    for (const file of files) expect(await stateOf(db, file.uuid)).toBeNull();
  });

  it('finishes stale tombstones left by a delete that never removed the bytes', async () => {
    const { sweeper, repository, storage, db } = replica();
    const owner = newOwner();
    const orphan = await storedFile(repository, owner, { bytes: 40, lifetimeMs: 10 * HOUR_MS });
    const kept = await storedFile(repository, owner, { bytes: 2, lifetimeMs: 10 * HOUR_MS });
    // DELETE /files/{id} tombstoned it, then the process died before deleting the bytes.
    expect(await repository.tombstone(owner, orphan.uuid, clock.now())).not.toBeNull();
    clock.advance((STALE_SECONDS + 1) * 1000);

    expect(await sweeper.sweep()).toEqual({ ran: true, expired: 0, purged: 1, failed: 0 });
    expect(storage.deleteAttempts).toEqual([storageKeyFor(orphan.id)]);
    expect(await stateOf(db, orphan.uuid)).toBeNull();
    expect(await bytesExist(orphan)).toBe(false);
    expect(await bytesExist(kept)).toBe(true);
    expect(await ledger(db, owner)).toEqual({ used: 2, readySum: 2 });
  });

  it('lets one replica sweep at a time: the other returns ran:false while the lock is held', async () => {
    const a = replica();
    const b = replica();
    const owner = newOwner();
    const files = await Promise.all(Array.from({ length: 4 }, () => storedFile(a.repository, owner, { bytes: 3 })));
    clock.advance(2 * HOUR_MS);

    const gate = a.storage.holdDeletes();
    const first = a.sweeper.sweep();
    try {
      await gate.reached;
      expect(await b.sweeper.sweep()).toEqual({ ran: false, expired: 0, purged: 0, failed: 0 });
      expect(b.storage.deleteAttempts).toEqual([]);
    } finally {
      gate.open();
    }
    expect(await first).toEqual({ ran: true, expired: 4, purged: 4, failed: 0 });
    // The lock is released with the run: the other replica may sweep now (nothing left).
    expect(await b.sweeper.sweep()).toEqual({ ran: true, expired: 0, purged: 0, failed: 0 });
    for (const file of files) expect(await stateOf(a.db, file.uuid)).toBeNull();
  });

  it('removes each expired file once when replicas sweep at the same time', async () => {
    const replicas = [replica({ batchSize: 4 }), replica({ batchSize: 4 })];
    const owner = newOwner();
    await Promise.all(Array.from({ length: 12 }, () => storedFile(replicas[0].repository, owner, { bytes: 2 })));
    clock.advance(2 * HOUR_MS);
    const reports = (await Promise.all([...replicas, ...replicas].map((r) => r.sweeper.sweep()))).filter((r) => r.ran);
    expect(reports.length).toBeGreaterThan(0);
    expect(reports.reduce((sum, r) => sum + r.expired, 0)).toBe(12);
    expect(reports.reduce((sum, r) => sum + r.purged, 0)).toBe(12);
    const attempts = replicas.flatMap((r) => r.storage.deleteAttempts);
    expect(new Set(attempts).size).toBe(12);
    expect(attempts).toHaveLength(12);
    expect(await ledger(replicas[0].db, owner)).toEqual({ used: 0, readySum: 0 });
  });

  it('stops a run after its current batch when the module is destroyed', async () => {
    const { sweeper, repository, storage, db } = replica({ batchSize: 2 });
    const owner = newOwner();
    await Promise.all(Array.from({ length: 6 }, () => storedFile(repository, owner, { bytes: 1 })));
    clock.advance(2 * HOUR_MS);
    const gate = storage.holdDeletes();
    const run = sweeper.sweep();
    await gate.reached;
    const destroyed = sweeper.onModuleDestroy();
    gate.open();
    expect(await run).toEqual({ ran: true, expired: 2, purged: 2, failed: 0 });
    await destroyed;
    // The other four are still ready (expired, not swept yet) for the next run.
    expect(await ledger(db, owner)).toEqual({ used: 4, readySum: 4 });
  });

  it('runs on its interval when enabled and stops on module destroy', async () => {
    const { sweeper, scheduler } = replica({ sweepIntervalSeconds: 60 });
    sweeper.onApplicationBootstrap();
    expect(scheduler.getIntervals()).toEqual(['files-expiry-sweep']);
    await sweeper.onModuleDestroy();
    expect(scheduler.getIntervals()).toEqual([]);

    const off = replica({ sweepIntervalSeconds: 0 });
    off.sweeper.onApplicationBootstrap();
    expect(off.scheduler.getIntervals()).toEqual([]);
  });
});
