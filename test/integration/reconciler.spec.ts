import {
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { SchedulerRegistry } from '@nestjs/schedule';
import { mkdtemp, readdir, rm, utimes, writeFile, mkdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { FilesDatabase } from '../../src/database/files-database';
import { newFileId, type FileId } from '../../src/files/file-id';
import { FilesError, FilesErrorCode } from '../../src/files/files.errors';
import { FilesMetrics } from '../../src/files/files.metrics';
import { FilesEvents } from '../../src/files/files.events';
import { FilesInstance } from '../../src/files/files.instance';
import type { FilesModuleOptions } from '../../src/files/files.options';
import { FilesRepository } from '../../src/files/files.repository';
import { ReconcileRepository } from '../../src/files/reconcile/reconcile.repository';
import { type ReconcileReport, Reconciler } from '../../src/files/reconcile/reconciler';
import type { FileStorage } from '../../src/files/storage/file-storage';
import { FsFileStorage } from '../../src/files/storage/fs-file-storage';
import { S3FileStorage } from '../../src/files/storage/s3-file-storage';
import { storageKeyFor } from '../../src/files/storage/storage-key';
import { FileUploadService } from '../../src/files/upload/file-upload.service';
import { TestClock } from '../support/app';
import { createTestBucket, createTestDatabase, listKeys, listMultipartUploads, type TestBucket, type TestDatabase } from '../support/backends';
import { FaultyStorage } from '../support/faulty-storage';
import { HOUR_MS, ledger, newOwner, openFilesDatabase, seedFile, seedPending, stateOf, type SeededFile } from '../support/files-db';
import { eventually, manualStream, MiB, randomContent, streamOf } from '../support/streams';

const STALE_SECONDS = 60;
/** Far enough ahead that every object, upload and heartbeat written so far is past the window. */
const PAST_WINDOW_MS = (STALE_SECONDS + 30) * 1000;

type Counts = Omit<ReconcileReport, 'ran' | 'repaired' | 'usageDrift'>;
const NOTHING: Counts = { stalePending: 0, abortedUploads: 0, orphanObjects: 0, lostObjects: 0, sizeMismatches: 0, failed: 0, withheld: null };

/** A report that found exactly `found` (and nothing else). */
function report(repaired: boolean, found: Partial<Counts> = {}, usageDrift: ReconcileReport['usageDrift'] = []): ReconcileReport {
  return { ran: true, repaired, ...NOTHING, ...found, usageDrift };
}

/** The reconciler's metric counters, all of them. */
function counters(metrics: FilesMetrics) {
  return {
    runs: metrics.value('reconcile_runs'),
    stalePending: metrics.value('reconcile_stale_pending'),
    abortedUploads: metrics.value('reconcile_aborted_uploads'),
    orphanObjects: metrics.value('reconcile_orphan_objects'),
    lostObjects: metrics.value('reconcile_lost_objects'),
    sizeMismatches: metrics.value('reconcile_size_mismatches'),
    failed: metrics.value('reconcile_failures'),
    // Shaped like the report's field (null when nothing was withheld) so NOTHING fits both.
    withheld: metrics.value('reconcile_withheld') || null,
  };
}

function moduleOptionsFor(staleAfterSeconds: number): FilesModuleOptions {
  return {
    limits: {
      maxBatchFileBytes: 200 * MiB,
      maxFileBytes: 512 * MiB,
      quotaBytesPerOwner: 2048 * MiB,
      maxConcurrentUploads: 8,
      maxConcurrentUploadsPerOwner: 8,
    },
    expiry: { sweepIntervalSeconds: 0, batchSize: 100 },
    reconcile: { intervalSeconds: 0, staleAfterSeconds },
  } as Pick<FilesModuleOptions, 'limits' | 'expiry' | 'reconcile'> as FilesModuleOptions;
}

/** Per-test database, clock and replicas (each with its own pool) over one shared storage. */
function harness(sharedStorage: () => FileStorage) {
  const h = {
    database: undefined as unknown as TestDatabase,
    clock: new TestClock(),
    pools: [] as FilesDatabase[],
    /** One replica: the real repositories, uploader and reconciler, storage wrapped for faults. */
    replica(options: { staleAfterSeconds?: number; storage?: FileStorage; database?: TestDatabase } = {}) {
      const staleAfterSeconds = options.staleAfterSeconds ?? STALE_SECONDS;
      const db = openFilesDatabase(options.database ?? h.database, 4);
      h.pools.push(db);
      const files = new FilesRepository(db);
      const storage = new FaultyStorage(options.storage ?? sharedStorage());
      const metrics = new FilesMetrics();
      const moduleOptions = moduleOptionsFor(staleAfterSeconds);
      const reconciler = new Reconciler(
        new ReconcileRepository(db),
        files,
        storage,
        db,
        h.clock,
        moduleOptions,
        new SchedulerRegistry(),
        metrics,
        new FilesInstance('files'),
      );
      const uploads = new FileUploadService(files, storage, h.clock, moduleOptions, new FilesEvents());
      return { db, files, storage, metrics, reconciler, uploads };
    },
  };
  beforeEach(async () => {
    h.database = await createTestDatabase();
    h.clock = new TestClock();
  });
  afterEach(async () => {
    await stopWriter?.();
    stopWriter = undefined;
    for (const pool of h.pools.splice(0)) await pool.close();
    await h.database.drop();
  });
  return h;
}

/** Ends a writer a case started, if the case ended before it did. */
let stopWriter: (() => Promise<void>) | undefined;

type Replica = ReturnType<ReturnType<typeof harness>['replica']>;

/** A pending row as the upload path writes it before the first byte (heartbeat = created_at = `nowMs`). */
function pendingRow(r: Replica, owner: string, nowMs: number): Promise<FileId> {
  return seedPending(r.files, owner, nowMs);
}

const keyOf = (id: { publicId?: string; id?: string }) => storageKeyFor((id.publicId ?? id.id)!);

describe(`${Reconciler.name} on S3`, () => {
  // A bucket per case: what one case leaves must not look like damage to the next.
  let bucket: TestBucket;
  let s3: S3FileStorage;
  beforeEach(async () => {
    bucket = await createTestBucket();
    s3 = new S3FileStorage(bucket.settings);
  });
  afterEach(async () => {
    s3?.close();
    await bucket?.drop();
  });
  const h = harness(() => s3);

  const exists = async (key: string) => (await s3.head(key)) !== null;
  const uploadsOpen = async () => (await listMultipartUploads(bucket.client, bucket.settings.bucket)).map((u) => u.key);

  /** A committed file with its bytes in the bucket. */
  async function storedFile(r: Replica, owner: string, bytes = 64, lifetimeMs = 10 * HOUR_MS): Promise<SeededFile> {
    const file = await seedFile(r.files, owner, { bytes, createdAtMs: h.clock.now().getTime(), lifetimeMs });
    await s3.put(storageKeyFor(file.id), streamOf(randomContent(bytes)));
    return file;
  }

  /** What a crashed lib-storage upload leaves: an open multipart upload with one part. */
  async function openMultipartUpload(key: string): Promise<string> {
    const Bucket = bucket.settings.bucket;
    const { UploadId } = await bucket.client.send(new CreateMultipartUploadCommand({ Bucket, Key: key }));
    await bucket.client.send(new UploadPartCommand({ Bucket, Key: key, UploadId, PartNumber: 1, Body: randomContent(1024) }));
    return UploadId!;
  }

  /** Objects, open uploads, rows and usage: everything a reconciler could change. */
  async function snapshot(db: FilesDatabase) {
    const rows = await db.pool.query(`SELECT id::text, owner_id, state::text, bytes::text, heartbeat_at FROM files ORDER BY id`);
    const usage = await db.pool.query(`SELECT owner_id, used_bytes::text FROM owner_usage ORDER BY owner_id`);
    return {
      keys: (await listKeys(bucket.client, bucket.settings.bucket)).sort(),
      uploads: (await uploadsOpen()).sort(),
      rows: rows.rows,
      usage: usage.rows,
    };
  }

  it('removes a pending upload whose writer died (row and bytes) and nothing else', async () => {
    const r = h.replica();
    const owner = newOwner();
    const live = await storedFile(r, owner, 40);
    const dead = await pendingRow(r, owner, h.clock.now().getTime());
    await s3.put(keyOf(dead), streamOf(randomContent(100)));
    h.clock.advance(PAST_WINDOW_MS);

    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true, { stalePending: 1 }));
    expect(await stateOf(r.db, dead.uuid)).toBeNull();
    expect(await exists(keyOf(dead))).toBe(false);
    expect(await stateOf(r.db, live.uuid)).toBe('ready');
    expect(await exists(keyOf(live))).toBe(true);
    expect(await ledger(r.db, owner)).toEqual({ used: 40, readySum: 40 });
    expect(counters(r.metrics)).toEqual({ ...NOTHING, runs: 1, stalePending: 1 });
    // Safe to run again: nothing left.
    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true));
    expect(counters(r.metrics)).toEqual({ ...NOTHING, runs: 2, stalePending: 1 });
  });

  it("aborts open multipart uploads nobody is finishing: a dead writer's, and one whose row is already gone", async () => {
    const r = h.replica();
    const owner = newOwner();
    const dead = await pendingRow(r, owner, h.clock.now().getTime());
    await openMultipartUpload(keyOf(dead));
    const rowless = newFileId(h.clock.now().getTime());
    await openMultipartUpload(keyOf(rowless));
    h.clock.advance(PAST_WINDOW_MS);

    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true, { stalePending: 1, abortedUploads: 2 }));
    expect(await uploadsOpen()).toEqual([]);
    expect(await stateOf(r.db, dead.uuid)).toBeNull();
    expect(await listKeys(bucket.client, bucket.settings.bucket)).toEqual([]);
    expect(counters(r.metrics)).toEqual({ ...NOTHING, runs: 1, stalePending: 1, abortedUploads: 2 });
  });

  it('deletes an object (and aborts an open upload) without a row only once older than the stale window', async () => {
    const r = h.replica();
    const orphan = newFileId(h.clock.now().getTime());
    await s3.put(keyOf(orphan), streamOf(randomContent(10)));
    const unfinished = keyOf(newFileId(h.clock.now().getTime()));
    await openMultipartUpload(unfinished);
    // Young: they may belong to an upload whose row this snapshot cannot see yet. Hands off.
    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true));
    expect(await exists(keyOf(orphan))).toBe(true);
    expect(await uploadsOpen()).toEqual([unfinished]);

    h.clock.advance(PAST_WINDOW_MS);
    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true, { orphanObjects: 1, abortedUploads: 1 }));
    expect(await exists(keyOf(orphan))).toBe(false);
    expect(await uploadsOpen()).toEqual([]);
    expect(counters(r.metrics)).toEqual({ ...NOTHING, runs: 2, orphanObjects: 1, abortedUploads: 1 });
  });

  it('takes a ready file whose bytes were deleted behind its back out of view and off usage', async () => {
    const r = h.replica();
    const [owner, other] = [newOwner('owner'), newOwner('other')];
    const kept = await storedFile(r, owner, 7);
    const lost = await storedFile(r, owner, 30);
    const othersFile = await storedFile(r, other, 30);
    await bucket.client.send(new DeleteObjectCommand({ Bucket: bucket.settings.bucket, Key: keyOf(lost) }));
    // Committed by a replica whose clock runs ahead: after this pass began, so its bytes may
    // not be listed yet. Not lost.
    const newer = await seedFile(r.files, owner, { bytes: 5, createdAtMs: h.clock.now().getTime() + 60_000, lifetimeMs: 10 * HOUR_MS });
    h.clock.advance(1000);

    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true, { lostObjects: 1 }));
    expect(await stateOf(r.db, lost.uuid)).toBeNull();
    expect(await r.files.findVisible(owner, lost.uuid, h.clock.now())).toBeNull();
    expect(await ledger(r.db, owner)).toEqual({ used: 12, readySum: 12 });
    expect(await stateOf(r.db, newer.uuid)).toBe('ready');
    expect(await stateOf(r.db, kept.uuid)).toBe('ready');
    expect(await exists(keyOf(kept))).toBe(true);
    // Another owner's file of the same size: untouched, and so is what they are charged.
    expect(await stateOf(r.db, othersFile.uuid)).toBe('ready');
    expect(await ledger(r.db, other)).toEqual({ used: 30, readySum: 30 });
    expect(counters(r.metrics)).toEqual({ ...NOTHING, runs: 1, lostObjects: 1 });
  });

  it('reports a ready file whose object has a different size, and touches neither bytes nor row', async () => {
    const r = h.replica();
    const owner = newOwner();
    const file = await seedFile(r.files, owner, { bytes: 100, createdAtMs: h.clock.now().getTime(), lifetimeMs: 10 * HOUR_MS });
    await s3.put(keyOf(file), streamOf(randomContent(60)));
    h.clock.advance(PAST_WINDOW_MS);

    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true, { sizeMismatches: 1 }));
    expect(await stateOf(r.db, file.uuid)).toBe('ready');
    expect((await s3.head(keyOf(file)))?.size).toBe(60);
    expect(await ledger(r.db, owner)).toEqual({ used: 100, readySum: 100 });
    expect(counters(r.metrics)).toEqual({ ...NOTHING, runs: 1, sizeMismatches: 1 });
  });

  it('reports usage drift per owner without repairing it', async () => {
    const r = h.replica();
    const [alice, bob, carol] = [newOwner('alice'), newOwner('bob'), newOwner('carol')];
    await storedFile(r, alice, 10);
    await storedFile(r, bob, 20);
    await storedFile(r, carol, 30);
    await r.db.pool.query(`UPDATE owner_usage SET used_bytes = 999 WHERE owner_id = $1`, [alice]);
    await r.db.pool.query(`DELETE FROM owner_usage WHERE owner_id = $1`, [bob]);
    const ghost = newOwner('ghost');
    await r.db.pool.query(`INSERT INTO owner_usage (owner_id, used_bytes) VALUES ($1, 5)`, [ghost]);

    const drift = [
      { ownerId: alice, recorded: 999, actual: 10 },
      { ownerId: bob, recorded: 0, actual: 20 },
      { ownerId: ghost, recorded: 5, actual: 0 },
    ].sort((a, b) => (a.ownerId < b.ownerId ? -1 : 1));
    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true, {}, drift));
    // Reported, never repaired by the reconciler.
    expect(await ledger(r.db, alice)).toEqual({ used: 999, readySum: 10 });
    expect(await ledger(r.db, bob)).toEqual({ used: 0, readySum: 20 });
    expect(await ledger(r.db, ghost)).toEqual({ used: 5, readySum: 0 });
    expect(await ledger(r.db, carol)).toEqual({ used: 30, readySum: 30 });
    expect(counters(r.metrics)).toEqual({ ...NOTHING, runs: 1 });
  });

  it("keeps going when a lost file cannot come off its owner's usage (drifted below its size)", async () => {
    const r = h.replica();
    const owner = newOwner();
    const lost = await storedFile(r, owner, 50);
    await bucket.client.send(new DeleteObjectCommand({ Bucket: bucket.settings.bucket, Key: keyOf(lost) }));
    await r.db.pool.query(`UPDATE owner_usage SET used_bytes = 10 WHERE owner_id = $1`, [owner]);
    const orphan = newFileId(h.clock.now().getTime());
    await s3.put(keyOf(orphan), streamOf(randomContent(10)));
    h.clock.advance(PAST_WINDOW_MS);

    // Releasing 50 bytes from a recorded 10 would break usage >= 0: that one fix fails, is
    // counted and retried; the rest of the pass still runs. The audit repairs usage first.
    expect(await r.reconciler.reconcile({ repair: true })).toEqual(
      report(true, { lostObjects: 1, orphanObjects: 1, failed: 1 }, [{ ownerId: owner, recorded: 10, actual: 50 }]),
    );
    expect(await stateOf(r.db, lost.uuid)).toBe('ready');
    expect(await exists(keyOf(orphan))).toBe(false);
    expect(counters(r.metrics)).toEqual({ ...NOTHING, runs: 1, lostObjects: 1, orphanObjects: 1, failed: 1 });
  });

  it("never deletes a live file's bytes, however old, expired-but-unswept or just deleted", async () => {
    const r = h.replica();
    const owner = newOwner();
    const old = await storedFile(r, owner, 11, 30 * 24 * HOUR_MS);
    const expiring = await storedFile(r, owner, 12, HOUR_MS);
    const deleting = await storedFile(r, owner, 13);
    // DELETE /files/{id} tombstoned it and is about to delete the bytes: the sweeper's, not ours.
    expect(await r.files.tombstone(owner, deleting.uuid, h.clock.now())).not.toBeNull();
    h.clock.advance(2 * HOUR_MS);

    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true));
    for (const file of [old, expiring, deleting]) expect(await exists(keyOf(file))).toBe(true);
    expect(r.storage.deleteAttempts).toEqual([]);
    expect([await stateOf(r.db, old.uuid), await stateOf(r.db, expiring.uuid), await stateOf(r.db, deleting.uuid)]).toEqual([
      'ready',
      'ready',
      'deleting',
    ]);
  });

  it('leaves an upload in progress alone (row and open multipart upload), and its writer still commits', async () => {
    // A short window so the writer's real heartbeat (every window/4) keeps up with the clock.
    const r = h.replica({ staleAfterSeconds: 2 });
    const owner = newOwner();
    const content = randomContent(6 * MiB);
    const body = manualStream();
    const receiving = r.uploads.receive(owner, body.stream, 'in-progress.jsonl', { purpose: 'batch' });
    // If the case fails half-way, end the writer (and its heartbeat) before the pool closes.
    stopWriter = async () => {
      body.stream.destroy(new Error('case over'));
      await receiving.catch(() => undefined);
    };
    await body.feed(content.subarray(0, 5 * MiB + 1024));
    await eventually(async () => (await uploadsOpen()).length === 1, 10_000);
    const { rows } = await r.db.pool.query<{ id: string }>(`SELECT id::text FROM files WHERE owner_id = $1`, [owner]);
    expect(rows).toHaveLength(1);
    // The upload is now much older than the window; only its heartbeat says it is alive.
    h.clock.advance(60_000);
    await eventually(async () => {
      const { rows: beat } = await r.db.pool.query(`SELECT heartbeat_at FROM files WHERE id = $1`, [rows[0].id]);
      return beat[0].heartbeat_at.getTime() > h.clock.now().getTime() - 1000;
    });

    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true));
    expect(await stateOf(r.db, rows[0].id)).toBe('pending');
    expect(await uploadsOpen()).toHaveLength(1);

    await body.feed(content.subarray(5 * MiB + 1024));
    body.stream.end();
    const upload = await receiving;
    const file = await r.uploads.complete(upload, { purpose: 'batch' });
    expect(file.bytes).toBe(content.length);
    expect((await s3.head(keyOf(file)))?.size).toBe(content.length);
    expect(await ledger(r.db, owner)).toEqual({ used: content.length, readySum: content.length });
    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true));
  });

  it('a pending upload claimed as stale can no longer commit, its bytes are removed, and late bytes become an orphan', async () => {
    const r = h.replica();
    const owner = newOwner();
    const upload = await r.uploads.receive(owner, streamOf(randomContent(300)), 'slow.jsonl', { purpose: 'batch' });
    // The writer stalls (e.g. a long GC pause or a lost database connection): no more heartbeats.
    upload.stopHeartbeat();
    h.clock.advance(PAST_WINDOW_MS);

    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true, { stalePending: 1 }));
    expect(await exists(keyOf(upload))).toBe(false);
    expect(await stateOf(r.db, upload.uuid)).toBeNull();

    // The writer wakes up: its commit must fail, charge nothing and show nothing.
    const commit = r.uploads.complete(upload, { purpose: 'batch' });
    await expect(commit).rejects.toBeInstanceOf(FilesError);
    await expect(commit).rejects.toMatchObject({ code: FilesErrorCode.ServiceUnavailable });
    expect(await r.files.findVisible(owner, upload.uuid, h.clock.now())).toBeNull();
    expect(await ledger(r.db, owner)).toEqual({ used: 0, readySum: 0 });

    // A writer that finishes its put after the claim leaves bytes without a row: an orphan.
    await s3.put(keyOf(upload), streamOf(randomContent(300)));
    h.clock.advance(PAST_WINDOW_MS);
    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true, { orphanObjects: 1 }));
    expect(await exists(keyOf(upload))).toBe(false);
  });

  it('a dry run changes nothing, reports the same counts as the repair, and counts only the run', async () => {
    const r = h.replica();
    const [alice, bob] = [newOwner('alice'), newOwner('bob')];
    const live = await storedFile(r, alice, 9);
    const dead = await pendingRow(r, alice, h.clock.now().getTime());
    await s3.put(keyOf(dead), streamOf(randomContent(20)));
    await openMultipartUpload(keyOf(newFileId(h.clock.now().getTime())));
    const orphan = newFileId(h.clock.now().getTime());
    await s3.put(keyOf(orphan), streamOf(randomContent(20)));
    const lost = await storedFile(r, bob, 30);
    await bucket.client.send(new DeleteObjectCommand({ Bucket: bucket.settings.bucket, Key: keyOf(lost) }));
    const mismatched = await seedFile(r.files, bob, { bytes: 40, createdAtMs: h.clock.now().getTime(), lifetimeMs: 10 * HOUR_MS });
    await s3.put(keyOf(mismatched), streamOf(randomContent(41)));
    await r.db.pool.query(`UPDATE owner_usage SET used_bytes = used_bytes + 3 WHERE owner_id = $1`, [alice]);
    h.clock.advance(PAST_WINDOW_MS);

    const found = { stalePending: 1, abortedUploads: 1, orphanObjects: 1, lostObjects: 1, sizeMismatches: 1 };
    const drift = [{ ownerId: alice, recorded: 12, actual: 9 }];
    const before = await snapshot(r.db);
    expect(await r.reconciler.reconcile({ repair: false })).toEqual(report(false, found, drift));
    expect(await snapshot(r.db)).toEqual(before);
    expect(r.storage.deleteAttempts).toEqual([]);
    expect(counters(r.metrics)).toEqual({ ...NOTHING, runs: 1 });

    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true, found, drift));
    expect(counters(r.metrics)).toEqual({ ...NOTHING, runs: 2, ...found });
    expect(await listKeys(bucket.client, bucket.settings.bucket)).toEqual([keyOf(live), keyOf(mismatched)].sort());
    expect(await uploadsOpen()).toEqual([]);
    // The lost file's bytes came off bob's usage; only the tampering on alice remains.
    expect(await r.reconciler.reconcile({ repair: false })).toEqual(report(false, { sizeMismatches: 1 }, drift));
  });

  it('lets one reconciler run at a time: the other returns ran:false and touches nothing', async () => {
    const a = h.replica();
    const b = h.replica();
    const owner = newOwner();
    const dead = await pendingRow(a, owner, h.clock.now().getTime());
    await s3.put(keyOf(dead), streamOf(randomContent(20)));
    const orphan = newFileId(h.clock.now().getTime());
    await s3.put(keyOf(orphan), streamOf(randomContent(20)));
    h.clock.advance(PAST_WINDOW_MS);

    const gate = a.storage.holdDeletes();
    const first = a.reconciler.reconcile({ repair: true });
    await Promise.race([gate.reached, first.then(() => Promise.reject(new Error('the run ended without deleting anything')))]);
    expect(await b.reconciler.reconcile({ repair: true })).toEqual({ ...report(true), ran: false });
    expect(await b.reconciler.reconcile({ repair: false })).toEqual({ ...report(false), ran: false });
    expect(b.storage.deleteAttempts).toEqual([]);
    expect(counters(b.metrics)).toEqual({ ...NOTHING, runs: 0 });
    gate.open();
    expect(await first).toEqual(report(true, { stalePending: 1, orphanObjects: 1 }));
    // The lock goes with the run: the other may reconcile now, and finds nothing.
    expect(await b.reconciler.reconcile({ repair: true })).toEqual(report(true));
    expect(await listKeys(bucket.client, bucket.settings.bucket)).toEqual([]);
  });

  it('never touches keys this service did not write: outside files/ or not a file id', async () => {
    const r = h.replica();
    const Bucket = bucket.settings.bucket;
    const valid = newFileId(h.clock.now().getTime()).publicId;
    const foreignKeys = [
      `backups/${valid}`,
      `${valid}`,
      `files/notes`,
      `files/${valid}/thumbnail`,
      `files/${valid.toUpperCase()}`,
      `files/${valid}.bak`,
      `files/file_not-an-id`,
    ];
    for (const Key of foreignKeys) await bucket.client.send(new PutObjectCommand({ Bucket, Key, Body: 'not ours' }));
    const foreignUploads = [`files/not-an-id`, `files/${valid}/part`, `backups/${valid}`];
    for (const key of foreignUploads) await openMultipartUpload(key);
    h.clock.advance(PAST_WINDOW_MS);

    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true));
    expect(await listKeys(bucket.client, Bucket)).toEqual([...foreignKeys].sort());
    expect((await uploadsOpen()).sort()).toEqual([...foreignUploads].sort());
    expect(r.storage.deleteAttempts).toEqual([]);
  });

  // Every object is "without a row" when the reconciler runs against the wrong or a freshly
  // restored database: the mass-damage guard withholds the deletions.
  it('does not empty the bucket when it runs against an empty database (DATABASE_URL mixed up)', async () => {
    const r = h.replica();
    const owner = newOwner();
    const files = [await storedFile(r, owner, 10), await storedFile(r, owner, 11), await storedFile(r, owner, 12)];
    const empty = await createTestDatabase();
    try {
      const wrong = h.replica({ database: empty });
      h.clock.advance(PAST_WINDOW_MS);
      await wrong.reconciler.reconcile({ repair: true });
    } finally {
      for (const pool of h.pools.splice(1)) await pool.close();
      await empty.drop();
    }
    for (const file of files) expect(await exists(keyOf(file))).toBe(true);
  });
});

describe(`${Reconciler.name} on the filesystem`, () => {
  let root: string;
  let fs: FsFileStorage;
  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'files-api-reconcile-'));
    fs = new FsFileStorage(root);
    await fs.init();
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });
  const h = harness(() => fs);
  const partials = () => readdir(path.join(root, '.partial'));

  /** What a write that crashed before its rename leaves: a partial file under .partial/. */
  async function crashedPartial(key: string): Promise<string> {
    const name = `${key.replace(/\//g, '~')}.${'a1b2c3d4e5f6'}`;
    await writeFile(path.join(root, '.partial', name), randomContent(500));
    return name;
  }

  it('removes a partial file and the pending row of a crashed write; leaves a young partial alone', async () => {
    const r = h.replica();
    const owner = newOwner();
    const dead = await pendingRow(r, owner, h.clock.now().getTime());
    await crashedPartial(keyOf(dead));
    await crashedPartial(keyOf(newFileId(h.clock.now().getTime())));
    h.clock.advance(PAST_WINDOW_MS);
    const young = await crashedPartial(keyOf(newFileId(h.clock.now().getTime())));
    // Written "now" by the advanced clock's standards.
    const t = new Date(h.clock.now().getTime());
    await utimes(path.join(root, '.partial', young), t, t);

    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true, { stalePending: 1, abortedUploads: 2 }));
    expect(await partials()).toEqual([young]);
    expect(await stateOf(r.db, dead.uuid)).toBeNull();
    expect(counters(r.metrics)).toEqual({ ...NOTHING, runs: 1, stalePending: 1, abortedUploads: 2 });
  });

  it('leaves a write in progress alone (pending row and partial file), and its writer still commits', async () => {
    const r = h.replica({ staleAfterSeconds: 2 });
    const owner = newOwner();
    const content = randomContent(300_000);
    const body = manualStream();
    const receiving = r.uploads.receive(owner, body.stream, 'in-progress.jsonl', { purpose: 'batch' });
    stopWriter = async () => {
      body.stream.destroy(new Error('case over'));
      await receiving.catch(() => undefined);
    };
    await body.feed(content.subarray(0, 100_000));
    await eventually(async () => (await partials()).length === 1);
    const { rows } = await r.db.pool.query<{ id: string }>(`SELECT id::text FROM files WHERE owner_id = $1`, [owner]);
    h.clock.advance(60_000);
    await eventually(async () => {
      const { rows: beat } = await r.db.pool.query(`SELECT heartbeat_at FROM files WHERE id = $1`, [rows[0].id]);
      return beat[0].heartbeat_at.getTime() > h.clock.now().getTime() - 1000;
    });

    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true));
    expect(await partials()).toHaveLength(1);
    await body.feed(content.subarray(100_000));
    body.stream.end();
    const file = await r.uploads.complete(await receiving, { purpose: 'batch' });
    expect((await fs.head(keyOf(file)))?.size).toBe(content.length);
    expect(await ledger(r.db, owner)).toEqual({ used: content.length, readySum: content.length });
  });

  it('deletes an orphan file, takes a file with lost bytes out of view, and reports a size mismatch', async () => {
    const r = h.replica();
    const owner = newOwner();
    const orphan = newFileId(h.clock.now().getTime());
    await fs.put(keyOf(orphan), streamOf(randomContent(10)));
    const lost = await seedFile(r.files, owner, { bytes: 20, createdAtMs: h.clock.now().getTime(), lifetimeMs: 10 * HOUR_MS });
    const mismatched = await seedFile(r.files, owner, { bytes: 30, createdAtMs: h.clock.now().getTime(), lifetimeMs: 10 * HOUR_MS });
    await fs.put(keyOf(mismatched), streamOf(randomContent(31)));
    h.clock.advance(PAST_WINDOW_MS);

    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true, { orphanObjects: 1, lostObjects: 1, sizeMismatches: 1 }));
    expect(await fs.head(keyOf(orphan))).toBeNull();
    expect(await stateOf(r.db, lost.uuid)).toBeNull();
    expect((await fs.head(keyOf(mismatched)))?.size).toBe(31);
    expect(await ledger(r.db, owner)).toEqual({ used: 30, readySum: 30 });
  });

  it('ignores files in the storage directory this service did not write, and still reconciles', async () => {
    const r = h.replica();
    const valid = newFileId(h.clock.now().getTime()).publicId;
    const strays = ['README.txt', 'other/file.bin', `files/${valid}.bak`, 'files/.DS_Store', `files/${valid}/thumb`, 'files/notes'];
    for (const stray of strays) {
      await mkdir(path.dirname(path.join(root, stray)), { recursive: true });
      await writeFile(path.join(root, stray), 'not ours');
    }
    await writeFile(path.join(root, '.partial', 'files~notes.a1b2c3d4e5f6'), 'not ours');
    await writeFile(path.join(root, '.partial', 'editor-swap-file'), 'not ours');
    const orphan = newFileId(h.clock.now().getTime());
    await fs.put(keyOf(orphan), streamOf(randomContent(10)));
    h.clock.advance(PAST_WINDOW_MS);

    expect(await r.reconciler.reconcile({ repair: true })).toEqual(report(true, { orphanObjects: 1 }));
    for (const stray of strays) expect((await stat(path.join(root, stray))).isFile()).toBe(true);
    expect((await partials()).sort()).toEqual(['editor-swap-file', 'files~notes.a1b2c3d4e5f6']);
  });

  // With the volume unmounted the storage directory is empty, so every ready file looks lost: the
  // mass-damage guard withholds the removals, and nothing is lost once the volume is back.
  it('does not wipe the files when storage suddenly holds none of them (an unmounted volume)', async () => {
    const r = h.replica();
    const owner = newOwner();
    const files: SeededFile[] = [];
    for (let i = 0; i < 3; i++) {
      const file = await seedFile(r.files, owner, { bytes: 10, createdAtMs: h.clock.now().getTime() + i, lifetimeMs: 10 * HOUR_MS });
      await fs.put(keyOf(file), streamOf(randomContent(10)));
      files.push(file);
    }
    const mountPoint = await mkdtemp(path.join(tmpdir(), 'files-api-unmounted-'));
    try {
      const unmounted = new FsFileStorage(mountPoint);
      await unmounted.init();
      h.clock.advance(PAST_WINDOW_MS);
      await h.replica({ storage: unmounted }).reconciler.reconcile({ repair: true });
    } finally {
      await rm(mountPoint, { recursive: true, force: true });
    }
    // The volume is back.
    await r.reconciler.reconcile({ repair: true });
    for (const file of files) {
      expect(await stateOf(r.db, file.uuid)).toBe('ready');
      expect((await fs.head(keyOf(file)))?.size).toBe(10);
    }
  });
});
