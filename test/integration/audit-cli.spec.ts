import { CreateMultipartUploadCommand, DeleteObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { Client } from 'pg';
import type { FilesDatabase } from '../../src/database/files-database';
import { newFileId } from '../../src/files/file-id';
import { FilesRepository } from '../../src/files/files.repository';
import { RECONCILE_LOCK_ID } from '../../src/files/reconcile/reconciler';
import { S3FileStorage } from '../../src/files/storage/s3-file-storage';
import { storageKeyFor } from '../../src/files/storage/storage-key';
import { createTestBucket, createTestDatabase, listKeys, listMultipartUploads, type TestBucket, type TestDatabase } from '../support/backends';
import { HOUR_MS, ledger, newOwner, openFilesDatabase, seedFile, seedPending, stateOf, type SeededFile } from '../support/files-db';
import { runAudit } from '../support/service-process';
import { randomContent, streamOf } from '../support/streams';

/**
 * The built audit command (`dist/cli/audit.js`; run `npm run build` first) against a real
 * PostgreSQL database and S3 bucket that a crash, an outage and a careless operator damaged.
 */
describe('audit command (dist/cli/audit.js)', () => {
  let database: TestDatabase;
  let bucket: TestBucket;
  let db: FilesDatabase;
  let files: FilesRepository;
  let s3: S3FileStorage;
  beforeEach(async () => {
    [database, bucket] = await Promise.all([createTestDatabase(), createTestBucket()]);
    db = openFilesDatabase(database, 2);
    files = new FilesRepository(db);
    s3 = new S3FileStorage(bucket.settings);
  });
  afterEach(async () => {
    s3.close();
    await db.close();
    await Promise.all([database.drop(), bucket.drop()]);
  });

  /** What `npm run audit` reads; a 1 s window so the damage made here is stale after a short wait. */
  const env = (extra: Record<string, string> = {}) => ({
    DATABASE_URL: database.url,
    ...bucket.env,
    FILES_PENDING_STALE_SECONDS: '1',
    LOG_FORMAT: 'text',
    ...extra,
  });
  const key = (id: { publicId?: string; id?: string }) => storageKeyFor((id.publicId ?? id.id)!);
  const exists = async (id: { publicId?: string; id?: string }) => (await s3.head(key(id))) !== null;
  /** Object ages and S3 multipart initiation times cannot be backdated: wait past the 1 s window. */
  const pastTheWindow = () => new Promise((resolve) => setTimeout(resolve, 2_200));

  async function storedFile(owner: string, bytes: number, stored = bytes): Promise<SeededFile> {
    const file = await seedFile(files, owner, { bytes, lifetimeMs: 10 * HOUR_MS });
    await s3.put(key(file), streamOf(randomContent(stored)));
    return file;
  }

  async function openMultipartUpload(objectKey: string): Promise<void> {
    const Bucket = bucket.settings.bucket;
    const { UploadId } = await bucket.client.send(new CreateMultipartUploadCommand({ Bucket, Key: objectKey }));
    await bucket.client.send(new UploadPartCommand({ Bucket, Key: objectKey, UploadId, PartNumber: 1, Body: randomContent(1024) }));
  }

  const deleteBehindItsBack = (file: SeededFile) =>
    bucket.client.send(new DeleteObjectCommand({ Bucket: bucket.settings.bucket, Key: key(file) }));

  /** Objects, open uploads, rows and usage: everything the audit could change. */
  async function snapshot() {
    const rows = await db.pool.query(`SELECT id::text, owner_id, state::text, bytes::text, heartbeat_at FROM files ORDER BY id`);
    const usage = await db.pool.query(`SELECT owner_id, used_bytes::text, updated_at FROM owner_usage ORDER BY owner_id`);
    return {
      keys: (await listKeys(bucket.client, bucket.settings.bucket)).sort(),
      uploads: (await listMultipartUploads(bucket.client, bucket.settings.bucket)).map((u) => u.key).sort(),
      rows: rows.rows,
      usage: usage.rows,
    };
  }

  const NOTHING = { stalePending: 0, abortedUploads: 0, orphanObjects: 0, lostObjects: 0, sizeMismatches: 0, usageDrift: [], failed: 0, withheld: null };

  /**
   * One of each kind of damage. An abandoned upload (pending row whose heartbeat stopped a minute
   * ago, plus its bytes), an open multipart upload nobody finishes, an object without a row, a
   * file whose bytes were deleted behind its back, optionally a file whose object has another
   * size, and a usage total someone edited by hand.
   */
  async function damage(options: { sizeMismatch: boolean }) {
    const [alice, bob, carol] = [newOwner('alice'), newOwner('bob'), newOwner('carol')];
    const healthy = await storedFile(alice, 25);
    const abandoned = await seedPending(files, alice, Date.now() - 60_000);
    await s3.put(key(abandoned), streamOf(randomContent(70)));
    const unfinished = key(newFileId(Date.now()));
    await openMultipartUpload(unfinished);
    const orphan = newFileId(Date.now());
    await s3.put(key(orphan), streamOf(randomContent(15)));
    const lost = await storedFile(bob, 40);
    await deleteBehindItsBack(lost);
    const mismatched = options.sizeMismatch ? await storedFile(bob, 33, 34) : undefined;
    const carolsFile = await storedFile(carol, 8);
    await db.pool.query(`UPDATE owner_usage SET used_bytes = 1000 WHERE owner_id = $1`, [carol]);
    await pastTheWindow();
    return { alice, bob, carol, healthy, abandoned, unfinished, orphan, lost, mismatched, carolsFile };
  }

  it('exits 0 on a clean system, with or without --repair, and changes nothing', async () => {
    const owner = newOwner();
    const file = await storedFile(owner, 12);
    await pastTheWindow();
    const before = await snapshot();

    const audit = await runAudit(env());
    expect(audit.code).toBe(0);
    expect(audit.report.before).toEqual({ ran: true, repaired: false, ...NOTHING, rowsByState: { ready: 1 } });
    expect(audit.report.after).toBeUndefined();

    const repair = await runAudit(env(), ['--repair']);
    expect(repair.code).toBe(0);
    expect(repair.report.after).toEqual({ ran: true, repaired: false, ...NOTHING, rowsByState: { ready: 1 } });
    expect(repair.report.repaired).toEqual({ sweep: { ran: true, expired: 0, purged: 0, failed: 0 }, usage: [] });
    expect(await snapshot()).toEqual(before);
    expect(await exists(file)).toBe(true);
  });

  it('without --repair exits 1, lists every difference and changes nothing; --repair leaves only the size mismatch', async () => {
    const d = await damage({ sizeMismatch: true });
    const before = await snapshot();

    const audit = await runAudit(env());
    expect(audit.code).toBe(1);
    expect(audit.report.before).toEqual({
      ran: true,
      repaired: false,
      stalePending: 1,
      abortedUploads: 1,
      orphanObjects: 1,
      lostObjects: 1,
      sizeMismatches: 1,
      usageDrift: [{ ownerId: d.carol, recorded: 1000, actual: 8 }],
      failed: 0,
      withheld: null,
      rowsByState: { pending: 1, ready: 4 },
    });
    expect(audit.report.repaired).toBeUndefined();
    expect(await snapshot()).toEqual(before);

    // A size mismatch is for a person to judge (which side is right?): reported, never touched.
    const repair = await runAudit(env(), ['--repair']);
    expect(repair.code).toBe(1);
    expect(repair.report.after).toEqual({ ran: true, repaired: false, ...NOTHING, sizeMismatches: 1, rowsByState: { ready: 3 } });
    expect(await stateOf(db, d.mismatched!.uuid)).toBe('ready');
    expect((await s3.head(key(d.mismatched!)))?.size).toBe(34);
    expect(await exists(d.healthy)).toBe(true);
  });

  it('with --repair fixes every difference and exits 0 with `after` consistent', async () => {
    const d = await damage({ sizeMismatch: false });
    // A lost file whose owner's usage also drifted below its size: usage must be set right
    // before the file comes off it, or the release breaks usage >= 0.
    const dave = newOwner('dave');
    const lostToo = await storedFile(dave, 50);
    await deleteBehindItsBack(lostToo);
    await db.pool.query(`UPDATE owner_usage SET used_bytes = 10 WHERE owner_id = $1`, [dave]);
    // A DELETE that died after taking the file out of view, before removing its bytes.
    const deleted = await storedFile(d.alice, 9);
    expect(await files.tombstone(d.alice, deleted.uuid, new Date(Date.now() - 60_000))).not.toBeNull();

    const audit = await runAudit(env(), ['--repair']);
    expect(audit.code).toBe(0);
    const drift = [
      { ownerId: d.carol, recorded: 1000, actual: 8 },
      { ownerId: dave, recorded: 10, actual: 50 },
    ].sort((a, b) => (a.ownerId < b.ownerId ? -1 : 1));
    expect(audit.report.before).toMatchObject({ stalePending: 1, abortedUploads: 1, orphanObjects: 1, lostObjects: 2, usageDrift: drift });
    expect(audit.report.before.rowsByState).toEqual({ pending: 1, ready: 4, deleting: 1 });
    expect(audit.report.repaired.sweep).toEqual({ ran: true, expired: 0, purged: 1, failed: 0 });
    expect(audit.report.repaired.usage).toEqual(drift.map((x) => ({ ownerId: x.ownerId, before: x.recorded, after: x.actual })));
    expect(audit.report.after).toEqual({ ran: true, repaired: false, ...NOTHING, rowsByState: { ready: 2 } });

    expect((await listKeys(bucket.client, bucket.settings.bucket)).sort()).toEqual([key(d.healthy), key(d.carolsFile)].sort());
    expect(await listMultipartUploads(bucket.client, bucket.settings.bucket)).toEqual([]);
    for (const gone of [d.abandoned, d.lost, lostToo, deleted]) expect(await stateOf(db, gone.uuid)).toBeNull();
    for (const owner of [d.alice, d.bob, d.carol, dave]) {
      const { used, readySum } = await ledger(db, owner);
      expect(used).toBe(readySum);
    }
    expect(await ledger(db, d.carol)).toEqual({ used: 8, readySum: 8 });

    // Idempotent: a second audit finds nothing.
    expect((await runAudit(env())).code).toBe(0);
  });

  it('withholds deleting objects that are mostly without rows (a wrong database) unless --force', async () => {
    const owner = newOwner();
    const stored = [await storedFile(owner, 5), await storedFile(owner, 6), await storedFile(owner, 7)];
    // What the service sees when DATABASE_URL names another (e.g. freshly restored) database.
    await db.pool.query(`DELETE FROM files`);
    await db.pool.query(`DELETE FROM owner_usage`);
    await pastTheWindow();
    const keys = stored.map(key).sort();

    const repair = await runAudit(env(), ['--repair']);
    expect(repair.code).toBe(1);
    expect(repair.report.after).toMatchObject({ orphanObjects: 3, withheld: expect.stringMatching(/3 of 3 stored objects/) });
    expect((await listKeys(bucket.client, bucket.settings.bucket)).sort()).toEqual(keys);

    expect((await runAudit(env(), ['--force'])).code).toBe(2);
    const forced = await runAudit(env(), ['--repair', '--force']);
    expect(forced.code).toBe(0);
    expect(await listKeys(bucket.client, bucket.settings.bucket)).toEqual([]);
  });

  it('with --json prints only the report on stdout, even when it logs warnings (default JSON logs)', async () => {
    // Not a key this service writes: the audit leaves it and logs a warning about it.
    await s3.put('files/notes', streamOf(randomContent(5)));
    await pastTheWindow();
    const { LOG_FORMAT: _text, ...jsonLogs } = env();
    const audit = await runAudit(jsonLogs);
    expect(audit.output).toMatch(/not a key this service writes/);
    expect(audit.code).toBe(0);
    expect(audit.report?.before).toMatchObject({ ran: true, ...NOTHING });
  });

  it('exits 2 while another instance holds the reconcile lock, and changes nothing', async () => {
    const orphan = newFileId(Date.now());
    await s3.put(key(orphan), streamOf(randomContent(15)));
    await pastTheWindow();
    const holder = new Client({ connectionString: database.url });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1)', [RECONCILE_LOCK_ID.toString()]);
      const audit = await runAudit(env(), ['--repair']);
      expect(audit.code).toBe(2);
      expect(audit.output).toMatch(/another instance is reconciling/);
    } finally {
      await holder.end();
    }
    expect(await exists(orphan)).toBe(true);
  });

  it('exits 2 naming the variable on bad configuration', async () => {
    const bogus = await runAudit(env({ STORAGE_DRIVER: 'bogus' }));
    expect(bogus.code).toBe(2);
    expect(bogus.output).toMatch(/STORAGE_DRIVER/);
    expect(bogus.report).toBeUndefined();

    const noDatabase = await runAudit({ ...env(), DATABASE_URL: '' });
    expect(noDatabase.code).toBe(2);
    expect(noDatabase.output).toMatch(/DATABASE_URL/);
  });

  it('exits 2 on an unknown option, naming it', async () => {
    const audit = await runAudit(env(), ['--repiar']);
    expect(audit.code).toBe(2);
    expect(audit.output).toMatch(/--repiar/);
    expect(audit.report).toBeUndefined();
  });
});
