import { randomInt } from 'node:crypto';
import { FilesError, FilesErrorCode } from '../../src/files/files.errors';
import { FilesRepository, type Tombstone } from '../../src/files/files.repository';
import {
  commitPending,
  HOUR_MS,
  ledger,
  newOwner,
  openRepository,
  seedFile,
  seedPending,
  stateOf,
  type RepositoryFixture,
} from '../support/files-db';

describe(FilesRepository.name, () => {
  let f: RepositoryFixture;
  let repository: FilesRepository;
  beforeAll(async () => {
    f = await openRepository({ poolMax: 10 });
    repository = f.repository;
  });
  afterAll(async () => f?.close());

  const at = (ms: number) => new Date(ms);

  describe('upload lifecycle', () => {
    it('keeps a pending upload invisible and uncharged', async () => {
      const owner = newOwner();
      const id = await seedPending(repository, owner);
      expect(await stateOf(f.db, id.uuid)).toBe('pending');
      expect(await repository.findVisible(owner, id.uuid, at(id.timestampMs))).toBeNull();
      expect((await repository.listPage(owner, { limit: 10, order: 'desc' }, at(id.timestampMs))).files).toEqual([]);
      expect(await repository.liveUsage(owner, at(id.timestampMs))).toBe(0);
      expect(await repository.touchPending(id.uuid, at(id.timestampMs + 1000))).toBe(true);
    });

    it('commits an upload: visible with its metadata, and charged to its owner', async () => {
      const owner = newOwner();
      const id = await seedPending(repository, owner);
      const file = await commitPending(repository, owner, id, { bytes: 1234, purpose: 'batch-output' });
      expect(file).toEqual({
        id: id.publicId,
        ownerId: owner,
        purpose: 'batch-output',
        filename: `${id.publicId}.jsonl`,
        bytes: 1234,
        sha256: 'ab'.repeat(32),
        createdAt: at(id.timestampMs),
        expiresAt: at(id.timestampMs + HOUR_MS),
      });
      expect(await repository.findVisible(owner, id.uuid, at(id.timestampMs))).toEqual(file);
      expect(await ledger(f.db, owner)).toEqual({ used: 1234, readySum: 1234 });
      expect(await repository.liveUsage(owner, at(id.timestampMs))).toBe(1234);
      // A committed upload is no longer pending: heartbeats and pending clean-up leave it alone.
      expect(await repository.touchPending(id.uuid, at(id.timestampMs))).toBe(false);
      await repository.deletePending(id.uuid);
      expect(await stateOf(f.db, id.uuid)).toBe('ready');
    });

    it('refuses a commit over quota and leaves the row pending and the usage unchanged', async () => {
      const owner = newOwner();
      await seedFile(repository, owner, { bytes: 700, quotaBytes: 1000 });
      const id = await seedPending(repository, owner);
      const refused = commitPending(repository, owner, id, { bytes: 301, quotaBytes: 1000 });
      await expect(refused).rejects.toMatchObject({ code: FilesErrorCode.QuotaExceeded, param: 'file' });
      expect(await stateOf(f.db, id.uuid)).toBe('pending');
      expect(await ledger(f.db, owner)).toEqual({ used: 700, readySum: 700 });
      // Exactly filling the quota is allowed.
      await commitPending(repository, owner, id, { bytes: 300, quotaBytes: 1000 });
      expect(await ledger(f.db, owner)).toEqual({ used: 1000, readySum: 1000 });
    });

    it('charges nothing when the pending row was removed before the commit', async () => {
      const owner = newOwner();
      const id = await seedPending(repository, owner);
      await repository.deletePending(id.uuid);
      await expect(commitPending(repository, owner, id, { bytes: 50 })).rejects.toMatchObject({
        code: FilesErrorCode.ServiceUnavailable,
      });
      expect(await ledger(f.db, owner)).toEqual({ used: 0, readySum: 0 });
      expect(await repository.touchPending(id.uuid, new Date())).toBe(false);
    });

    it("never commits another owner's pending upload", async () => {
      const owner = newOwner();
      const intruder = newOwner('intruder');
      const id = await seedPending(repository, owner);
      await expect(commitPending(repository, intruder, id, { bytes: 50 })).rejects.toBeInstanceOf(FilesError);
      expect(await stateOf(f.db, id.uuid)).toBe('pending');
      expect(await ledger(f.db, intruder)).toEqual({ used: 0, readySum: 0 });
    });
  });

  describe('expiry', () => {
    it('hides a file from the moment it expires, and liveUsage stops counting it', async () => {
      const owner = newOwner();
      const file = await seedFile(repository, owner, { bytes: 10 });
      const expiry = file.expiresAt.getTime();
      expect(await repository.findVisible(owner, file.uuid, at(expiry - 1))).not.toBeNull();
      expect(await repository.findVisible(owner, file.uuid, at(expiry))).toBeNull();
      expect(await repository.liveUsage(owner, at(expiry - 1))).toBe(10);
      expect(await repository.liveUsage(owner, at(expiry))).toBe(0);
      expect(await repository.liveUsage(newOwner('nobody'), at(expiry))).toBe(0);
    });

    it("releases expired files on the owner's next commit, so they no longer count toward quota", async () => {
      const owner = newOwner();
      const t0 = Date.now();
      const old = await seedFile(repository, owner, { bytes: 600, createdAtMs: t0, quotaBytes: 1000 });
      const early = await seedPending(repository, owner, t0 + 1);
      await expect(commitPending(repository, owner, early, { bytes: 600, quotaBytes: 1000 })).rejects.toMatchObject({
        code: FilesErrorCode.QuotaExceeded,
      });
      const late = await seedPending(repository, owner, t0 + HOUR_MS + 1);
      await commitPending(repository, owner, late, { bytes: 600, quotaBytes: 1000 });
      expect(await stateOf(f.db, old.uuid)).toBe('deleting');
      expect(await ledger(f.db, owner)).toEqual({ used: 600, readySum: 600 });
      // The sweeper finds it as a tombstone only, never as an expired file to release again.
      expect((await repository.tombstoneExpired(100, at(t0 + 2 * HOUR_MS))).map((t) => t.uuid)).not.toContain(old.uuid);
      expect(await ledger(f.db, owner)).toEqual({ used: 600, readySum: 600 });
    });
  });

  describe('tombstones', () => {
    it('tombstones a visible file once: out of view, off the usage, found by the sweeper when stale', async () => {
      const owner = newOwner();
      const file = await seedFile(repository, owner, { bytes: 77 });
      const now = file.createdAt.getTime() + 1000;
      const tombstone = await repository.tombstone(owner, file.uuid, at(now));
      expect(tombstone).toEqual({ uuid: file.uuid, publicId: file.id, ownerId: owner, bytes: 77 });
      expect(await repository.tombstone(owner, file.uuid, at(now))).toBeNull();
      expect(await repository.findVisible(owner, file.uuid, at(now))).toBeNull();
      expect(await ledger(f.db, owner)).toEqual({ used: 0, readySum: 0 });

      const stale = (before: number) => repository.findStaleTombstones(at(before), 10_000).then((ts) => ts.map((t) => t.uuid));
      expect(await stale(now)).not.toContain(file.uuid);
      expect(await stale(now + 1)).toContain(file.uuid);
      await repository.deleteTombstone(file.uuid);
      expect(await stateOf(f.db, file.uuid)).toBeNull();
    });

    it('refuses to tombstone an expired, pending, missing or foreign file', async () => {
      const owner = newOwner();
      const expired = await seedFile(repository, owner);
      const pending = await seedPending(repository, owner);
      const foreign = await seedFile(repository, newOwner('other'));
      const later = at(expired.expiresAt.getTime());
      expect(await repository.tombstone(owner, expired.uuid, later)).toBeNull();
      expect(await repository.tombstone(owner, pending.uuid, at(pending.timestampMs))).toBeNull();
      expect(await repository.tombstone(owner, foreign.uuid, at(foreign.createdAt.getTime()))).toBeNull();
      expect(await stateOf(f.db, foreign.uuid)).toBe('ready');
    });

    it('deleteTombstone removes only tombstones', async () => {
      const owner = newOwner();
      const file = await seedFile(repository, owner);
      const pending = await seedPending(repository, owner);
      await repository.deleteTombstone(file.uuid);
      await repository.deleteTombstone(pending.uuid);
      expect(await stateOf(f.db, file.uuid)).toBe('ready');
      expect(await stateOf(f.db, pending.uuid)).toBe('pending');
    });

    it('lists stale tombstones oldest first, at most `limit`', async () => {
      const owner = newOwner();
      const t0 = Date.now() - 10 * HOUR_MS;
      const files = [];
      for (let i = 0; i < 4; i++) files.push(await seedFile(repository, owner, { createdAtMs: t0 + i }));
      for (const [i, file] of [...files].reverse().entries()) await repository.tombstone(owner, file.uuid, at(t0 + 1000 + i));
      const found = await repository.findStaleTombstones(at(t0 + 1002), 10_000);
      const mine = found.filter((t) => t.ownerId === owner).map((t) => t.uuid);
      expect(mine).toEqual([files[3].uuid, files[2].uuid]);
      expect(await repository.findStaleTombstones(at(t0 + 2000), 1)).toHaveLength(1);
    });
  });

  describe('under concurrency', () => {
    it.each([1, 2, 3])('never lets concurrent commits push an owner past its quota (round %i)', async () => {
      const owner = newOwner('racer');
      const quota = 2_000;
      const sizes = Array.from({ length: 40 }, () => randomInt(40, 160));
      const ids = await Promise.all(sizes.map(() => seedPending(repository, owner)));
      const results = await Promise.allSettled(
        ids.map((id, i) => commitPending(repository, owner, id, { bytes: sizes[i], quotaBytes: quota, nowMs: Date.now() })),
      );
      const accepted = sizes.filter((_, i) => results[i].status === 'fulfilled');
      const refusals = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
      for (const reason of refusals) expect(reason).toMatchObject({ code: FilesErrorCode.QuotaExceeded });
      const charged = accepted.reduce((a, b) => a + b, 0);
      expect(refusals.length).toBeGreaterThan(0);
      expect(charged).toBeLessThanOrEqual(quota);
      // Usage only grew, so a refused file did not fit even at the end: the quota is nearly full.
      expect(charged).toBeGreaterThan(quota - Math.max(...sizes));
      expect(await ledger(f.db, owner)).toEqual({ used: charged, readySum: charged });
    });

    it('keeps usage exact when commits, deletes and expiry release race', async () => {
      const owner = newOwner('mixed');
      const quota = 3_000;
      const t0 = Date.now();
      // Live ones first: committing them after the others would already release the expired ones.
      const live = await Promise.all([0, 1, 2].map((i) => seedFile(repository, owner, { bytes: 300, createdAtMs: t0 + i, quotaBytes: quota })));
      const expiring = await Promise.all([0, 1, 2].map((i) => seedFile(repository, owner, { bytes: 400, createdAtMs: t0 - HOUR_MS - i, quotaBytes: quota })));
      expect(await ledger(f.db, owner)).toEqual({ used: 2100, readySum: 2100 });
      const pendings = await Promise.all(Array.from({ length: 32 }, (_, i) => seedPending(repository, owner, t0 + 10 + i)));
      const now = t0 + 1000;
      const results = await Promise.allSettled([
        ...pendings.map((id) => commitPending(repository, owner, id, { bytes: 150, quotaBytes: quota, nowMs: now })),
        ...live.map((file) => repository.tombstone(owner, file.uuid, at(now))),
        repository.tombstoneExpired(2, at(now)),
        repository.tombstoneExpired(2, at(now)),
      ]);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: FilesErrorCode.QuotaExceeded });
      for (const file of [...expiring, ...live]) expect(await stateOf(f.db, file.uuid)).toBe('deleting');
      const { used, readySum } = await ledger(f.db, owner);
      expect(used).toBe(readySum);
      expect(used).toBeLessThanOrEqual(quota);
    });

    it('tombstones a file exactly once when two deletes race', async () => {
      const owner = newOwner();
      const files = await Promise.all(Array.from({ length: 10 }, () => seedFile(repository, owner, { bytes: 10 })));
      const now = new Date();
      const outcomes = await Promise.all(files.map((file) => Promise.all([0, 1].map(() => repository.tombstone(owner, file.uuid, now)))));
      for (const pair of outcomes) expect(pair.filter((t) => t !== null)).toHaveLength(1);
      expect(await ledger(f.db, owner)).toEqual({ used: 0, readySum: 0 });
    });

    it('tombstones each expired file exactly once across two concurrent sweepers', async () => {
      const owners = [newOwner('sweep-a'), newOwner('sweep-b'), newOwner('sweep-c')];
      const t0 = Date.now();
      const expired = await Promise.all(
        Array.from({ length: 60 }, (_, i) => seedFile(repository, owners[i % 3], { bytes: 1 + i, createdAtMs: t0 + i })),
      );
      const live = await Promise.all(owners.map((owner) => seedFile(repository, owner, { bytes: 5, createdAtMs: t0, lifetimeMs: 10 * HOUR_MS })));
      const now = at(t0 + 2 * HOUR_MS);
      const sweeper = async () => {
        const seen: Tombstone[] = [];
        for (let batch = await repository.tombstoneExpired(7, now); batch.length > 0; batch = await repository.tombstoneExpired(7, now)) {
          expect(batch.length).toBeLessThanOrEqual(7);
          seen.push(...batch);
        }
        return seen;
      };
      const [a, b] = await Promise.all([sweeper(), sweeper()]);
      const mine = new Set(expired.map((file) => file.uuid));
      const taken = [...a, ...b].filter((t) => mine.has(t.uuid));
      expect(taken.map((t) => t.uuid).sort()).toEqual([...mine].sort());
      expect(taken.find((t) => t.uuid === expired[5].uuid)).toMatchObject({ ownerId: owners[2], bytes: 6 });
      for (const file of live) expect(await stateOf(f.db, file.uuid)).toBe('ready');
      for (const owner of owners) expect(await ledger(f.db, owner)).toEqual({ used: 5, readySum: 5 });
    });
  });
});
