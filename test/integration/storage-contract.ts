import { randomBytes } from 'node:crypto';
import { newFileId } from '../../src/files/file-id';
import { StorageUnavailableError } from '../../src/files/files.errors';
import type { FileStorage, IncompleteUpload } from '../../src/files/storage/file-storage';
import { storageKeyFor } from '../../src/files/storage/storage-key';
import { failingStream, manualStream, MiB, randomContent, readAll, sha256, streamOf } from '../support/streams';

/** One adapter on a real, private backend (a fresh bucket, a fresh directory). */
export interface StorageHarness {
  storage: FileStorage;
  /**
   * Writes the backend itself still holds open (open multipart uploads, partial files), seen
   * without going through the adapter. Tests run one at a time, so between tests this is empty.
   */
  openWrites(): Promise<string[]>;
  /** Leaves a started, unfinished write to `key`; `release` ends whatever keeps it open. */
  startIncompleteUpload(key: string): Promise<{ release(): Promise<void> }>;
  /** The same adapter pointed at a backend that does not answer or does not exist. */
  unreachable(): FileStorage;
  /**
   * A key whose delete fails on this backend while others succeed (a directory in the way on a
   * filesystem); absent where the real backend offers no such case (S3: see the stub-server test).
   */
  undeletableKey?(): Promise<string>;
  close(): Promise<void>;
}

/** Bodies this size span three multipart parts when the harness uses 5 MiB parts. */
export const LARGE_BYTES = 12 * MiB + 12_345;

const newKey = () => storageKeyFor(newFileId(Date.now()).publicId);

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/**
 * The FileStorage port's contract (see its JSDoc), run against every adapter so that they are
 * interchangeable: what one adapter guarantees, all do.
 */
export function storageContract(setup: () => Promise<StorageHarness>, options: { undeletableKeys?: boolean } = {}): void {
  let h: StorageHarness;
  let storage: FileStorage;
  beforeAll(async () => {
    h = await setup();
    storage = h.storage;
  });
  afterAll(async () => h?.close());

  describe('put and openRead', () => {
    it('round-trips a multi-part body of unknown length byte for byte', async () => {
      const key = newKey();
      const content = randomContent(LARGE_BYTES);
      await storage.put(key, streamOf(content));
      const read = await storage.openRead(key);
      expect(read?.size).toBe(content.length);
      const back = await readAll(read!.body);
      expect(back.length).toBe(content.length);
      expect(sha256(back)).toBe(sha256(content));
    });

    it('round-trips a body smaller than one part', async () => {
      const key = newKey();
      const content = randomContent(1000);
      await storage.put(key, streamOf(content));
      const read = await storage.openRead(key);
      expect(await readAll(read!.body)).toEqual(content);
    });

    it('reads inclusive byte ranges and reports the whole object size', async () => {
      const key = newKey();
      const content = randomContent(100_000);
      await storage.put(key, streamOf(content));
      for (const range of [
        { start: 0, end: 0 },
        { start: 10, end: 20 },
        { start: 99_999, end: 99_999 },
        { start: 0, end: 99_999 },
        { start: 65_000, end: 70_000 },
      ]) {
        const read = await storage.openRead(key, range);
        expect(read?.size).toBe(content.length);
        expect(await readAll(read!.body)).toEqual(content.subarray(range.start, range.end + 1));
      }
    });

    it('returns null when opening a key that does not exist', async () => {
      expect(await storage.openRead(newKey())).toBeNull();
      expect(await storage.openRead(newKey(), { start: 0, end: 10 })).toBeNull();
    });

    it('shows nothing under the key until put resolves', async () => {
      const key = newKey();
      const body = manualStream();
      const put = storage.put(key, body.stream);
      await body.feed(randomContent(6 * MiB));
      expect(await storage.head(key)).toBeNull();
      expect(await storage.openRead(key)).toBeNull();
      body.stream.end(randomContent(10));
      await put;
      expect((await storage.head(key))?.size).toBe(6 * MiB + 10);
    });
  });

  describe('a body that fails mid-way', () => {
    it.each([
      ['after a part was uploaded', 7 * MiB],
      ['before the first part completed', 100_000],
    ])('rejects put with the body error and leaves nothing behind (%s)', async (_when, sentBytes) => {
      const key = newKey();
      const error = new Error(`client went away after ${sentBytes} bytes`);
      await expect(storage.put(key, failingStream(randomContent(sentBytes), error))).rejects.toBe(error);
      expect(await storage.head(key)).toBeNull();
      expect(await storage.openRead(key)).toBeNull();
      expect(await h.openWrites()).toEqual([]);
      expect(await collect(storage.listIncompleteUploads(''))).toEqual([]);
      expect((await collect(storage.list(key))).map((o) => o.key)).not.toContain(key);
    });

    it('rejects put with the body error when the body fails before any byte', async () => {
      const key = newKey();
      const error = new Error('refused before the first byte');
      await expect(storage.put(key, failingStream(Buffer.alloc(0), error))).rejects.toBe(error);
      expect(await storage.head(key)).toBeNull();
      expect(await h.openWrites()).toEqual([]);
    });
  });

  describe('head and delete', () => {
    it('reports the size and a recent modification time, or null when missing', async () => {
      const key = newKey();
      const before = Date.now();
      await storage.put(key, streamOf(randomContent(4321)));
      const info = await storage.head(key);
      // Not expect.any(Date): node:fs builds its Dates in another realm than Jest's.
      expect(info).toMatchObject({ key, size: 4321 });
      // Backends keep whole seconds at best; allow for it and for clock skew.
      expect(Math.abs(info!.lastModified.getTime() - before)).toBeLessThan(60_000);
      expect(await storage.head(newKey())).toBeNull();
    });

    it('deletes an object, and deleting it again or a key never written succeeds', async () => {
      const key = newKey();
      await storage.put(key, streamOf(randomContent(10)));
      await storage.delete(key);
      expect(await storage.head(key)).toBeNull();
      expect(await storage.openRead(key)).toBeNull();
      await expect(storage.delete(key)).resolves.toBeUndefined();
      await expect(storage.delete(newKey())).resolves.toBeUndefined();
    });
  });

  describe('deleteMany', () => {
    it('deletes existing and missing keys alike, reporting no failure, and again', async () => {
      const stored = [newKey(), newKey(), newKey()];
      for (const key of stored) await storage.put(key, streamOf(randomContent(10)));
      const neverWritten = [newKey(), newKey()];
      const keys = [stored[0], neverWritten[0], stored[1], stored[2], neverWritten[1]];
      expect(await storage.deleteMany(keys)).toEqual({ failed: [] });
      for (const key of stored) expect(await storage.head(key)).toBeNull();
      expect(await storage.deleteMany(keys)).toEqual({ failed: [] });
    });

    it('accepts an empty list', async () => {
      expect(await storage.deleteMany([])).toEqual({ failed: [] });
    });

    it('leaves keys it was not given alone', async () => {
      const [gone, kept] = [newKey(), newKey()];
      await storage.put(gone, streamOf(randomContent(10)));
      await storage.put(kept, streamOf(randomContent(20)));
      await storage.deleteMany([gone]);
      expect(await storage.head(gone)).toBeNull();
      expect((await storage.head(kept))?.size).toBe(20);
    });

    // Only where the harness can make a key undeletable (fs: a read-only directory); on S3 the
    // same report is proven against a stub server in storage.s3.spec.ts.
    if (options.undeletableKeys) it('reports exactly the keys it could not delete, each with its error, and deletes the rest', async () => {
      const [a, b] = [newKey(), newKey()];
      await storage.put(a, streamOf(randomContent(10)));
      await storage.put(b, streamOf(randomContent(10)));
      const stuck = await h.undeletableKey!();
      const { failed } = await storage.deleteMany([a, stuck, newKey(), b]);
      expect(failed.map((f) => f.key)).toEqual([stuck]);
      expect(failed[0].error).toBeInstanceOf(StorageUnavailableError);
      expect(await storage.head(a)).toBeNull();
      expect(await storage.head(b)).toBeNull();
    });
  });

  describe('list', () => {
    it('lists exactly the objects under a prefix, with their sizes', async () => {
      const prefix = `listing-${randomBytes(4).toString('hex')}`;
      const inside = [`${prefix}/a`, `${prefix}/b`, `${prefix}/nested/c`];
      const outside = [`${prefix}-sibling/d`, `other-${randomBytes(4).toString('hex')}/e`];
      for (const [i, key] of [...inside, ...outside].entries()) await storage.put(key, streamOf(randomContent(i + 1)));
      const listed = await collect(storage.list(`${prefix}/`));
      expect(listed.map((o) => o.key).sort()).toEqual([...inside].sort());
      expect(listed.find((o) => o.key === `${prefix}/nested/c`)?.size).toBe(3);
      expect(await collect(storage.list(`${prefix}-nothing/`))).toEqual([]);
    });

    it('does not list an object whose write is still in progress', async () => {
      const prefix = `inflight-${randomBytes(4).toString('hex')}/`;
      const body = manualStream();
      const put = storage.put(`${prefix}x`, body.stream);
      await body.feed(randomContent(64 * 1024));
      expect(await collect(storage.list(prefix))).toEqual([]);
      body.stream.end();
      await put;
      expect((await collect(storage.list(prefix))).map((o) => o.key)).toEqual([`${prefix}x`]);
    });
  });

  describe('incomplete uploads', () => {
    it('lists a started, unfinished write under its prefix and aborts it', async () => {
      const key = newKey();
      const incomplete = await h.startIncompleteUpload(key);
      try {
        const found = (await collect(storage.listIncompleteUploads('files/'))).filter((u) => u.key === key);
        expect(found).toMatchObject([{ key, handle: expect.any(String) }]);
        expect(Number.isFinite(found[0].initiated.getTime())).toBe(true);
        expect(await collect(storage.listIncompleteUploads('elsewhere/'))).toEqual([]);
        expect(await storage.head(key)).toBeNull();

        await storage.abortIncompleteUpload(found[0]);
        expect(await collect(storage.listIncompleteUploads(''))).toEqual([]);
        expect(await h.openWrites()).toEqual([]);
        // Aborting twice (two reconcilers) is harmless.
        await expect(storage.abortIncompleteUpload(found[0])).resolves.toBeUndefined();
      } finally {
        await incomplete.release();
      }
      expect(await storage.head(key)).toBeNull();
      expect(await h.openWrites()).toEqual([]);
    });

    it('does not report completed writes as incomplete', async () => {
      const key = newKey();
      await storage.put(key, streamOf(randomContent(LARGE_BYTES)));
      const open: IncompleteUpload[] = await collect(storage.listIncompleteUploads(''));
      expect(open).toEqual([]);
      expect(await h.openWrites()).toEqual([]);
    });
  });

  describe('ping', () => {
    it('resolves when the backend is usable', async () => {
      await expect(storage.ping()).resolves.toBeUndefined();
    });

    it('fails with StorageUnavailableError when the backend is unreachable', async () => {
      const down = h.unreachable();
      await expect(down.ping()).rejects.toBeInstanceOf(StorageUnavailableError);
    });
  });

  describe('keys', () => {
    const unsafe = ['', '../escape', 'files/../../etc/passwd', '/absolute', 'a//b', 'a/', '.partial/x', 'a b', 'a\\b', 'files/x.y', 'é'];

    it.each(unsafe)('refuses the unsafe key %j in every operation', async (key) => {
      await expect(storage.put(key, streamOf(randomContent(10)))).rejects.toThrow(/unsafe storage key/);
      await expect(storage.openRead(key)).rejects.toThrow(/unsafe storage key/);
      await expect(storage.head(key)).rejects.toThrow(/unsafe storage key/);
      await expect(storage.delete(key)).rejects.toThrow(/unsafe storage key/);
      await expect(storage.deleteMany([key])).rejects.toThrow(/unsafe storage key/);
    });

    it('refuses a batch with an unsafe key before deleting any of it', async () => {
      const key = newKey();
      await storage.put(key, streamOf(randomContent(10)));
      await expect(storage.deleteMany([key, '../escape'])).rejects.toThrow(/unsafe storage key/);
      expect(await storage.head(key)).not.toBeNull();
    });

    it('keeps objects under similar keys apart', async () => {
      const base = newKey();
      await storage.put(base, streamOf(Buffer.from('one')));
      await storage.put(`${base}_2`, streamOf(Buffer.from('two')));
      expect((await readAll((await storage.openRead(base))!.body)).toString()).toBe('one');
      expect((await readAll((await storage.openRead(`${base}_2`))!.body)).toString()).toBe('two');
    });
  });
}
