import { Readable } from 'node:stream';
import { FilesErrorCode, StorageUnavailableError } from '../../src/files/files.errors';
import { FilesService } from '../../src/files/files.service';
import { storageKeyFor } from '../../src/files/storage/storage-key';
import type { UploadedFilePart } from '../../src/files/upload/file-storage.engine';
import { rejectedFilesError } from './support/expect-files-error';
import { captureLogs, filesHarness, partOf, T0 } from './support/upload-fixtures';

const DAY_MS = 86_400_000;
const CONTENT = '{"custom_id":"r1"}\n{"custom_id":"r2"}\n';

/** A harness with one committed file of alice's, stored under its key. */
async function withAliceFile(limits = {}) {
  const h = filesHarness(limits);
  const received = await h.uploads.receive('alice', partOf(CONTENT), 'input.jsonl', {});
  const file = await h.uploads.complete(received, { purpose: 'batch' });
  return { ...h, file, key: storageKeyFor(file.id) };
}

async function readAll(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

async function expectNotFound(promise: Promise<unknown>, id: string): Promise<void> {
  const error = await rejectedFilesError(promise);
  expect(error.code).toBe(FilesErrorCode.FileNotFound);
  expect(error.message).toContain(id);
}

describe(FilesService.name, () => {
  const logs = captureLogs();

  describe('create', () => {
    it('returns the FileObject of a completed upload', async () => {
      const h = filesHarness();
      const received = await h.uploads.receive('alice', partOf(CONTENT), 'input.jsonl', {});
      const part = { received } as UploadedFilePart;
      await expect(h.files.completeUpload(part, { purpose: 'batch' })).resolves.toEqual({
        id: received.publicId,
        object: 'file',
        bytes: CONTENT.length,
        created_at: T0.getTime() / 1000,
        expires_at: T0.getTime() / 1000 + 30 * 86_400,
        filename: 'input.jsonl',
        purpose: 'batch',
        status: 'processed',
      });
    });

    it('refuses a form without a file part', async () => {
      const h = filesHarness();
      const error = await rejectedFilesError(h.files.completeUpload(undefined, { purpose: 'batch' }));
      expect({ code: error.code, param: error.param }).toEqual({ code: FilesErrorCode.MissingParameter, param: 'file' });
    });
  });

  describe('retrieve', () => {
    it("returns the owner's file", async () => {
      const { files, file } = await withAliceFile();
      await expect(files.retrieve('alice', file.id)).resolves.toMatchObject({ id: file.id, bytes: CONTENT.length });
    });

    it("answers not found for another owner's file", async () => {
      const { files, file } = await withAliceFile();
      await expectNotFound(files.retrieve('bob', file.id), file.id);
    });

    it("gives no oracle: another owner's file fails exactly like an id that never existed", async () => {
      const { files, file, repository } = await withAliceFile();
      const theirs = await rejectedFilesError(files.retrieve('bob', file.id));
      const alice2 = await withAliceFile();
      await alice2.files.delete('alice', alice2.file.id);
      const gone = await rejectedFilesError(alice2.files.retrieve('alice', alice2.file.id));
      const shape = (e: typeof theirs, id: string) => ({ code: e.code, param: e.param, message: e.message.replace(id, '<id>') });
      expect(shape(theirs, file.id)).toEqual(shape(gone, alice2.file.id));
    });

    it('answers not found for an expired file, at the very second it expires', async () => {
      const { files, file, clock } = await withAliceFile();
      clock.advance(30 * DAY_MS - 1);
      await expect(files.retrieve('alice', file.id)).resolves.toBeDefined();
      clock.advance(1);
      await expectNotFound(files.retrieve('alice', file.id), file.id);
    });

    it.each(['file-abc', 'file_', '', 'FILE_01JD5X7K9M3N4P5Q6R7S8T9V0W', '../../etc/passwd'])(
      'answers not found for the malformed id %p without asking the database',
      async (id) => {
        const h = filesHarness();
        const findVisible = jest.spyOn(h.repository, 'findVisible');
        await expectNotFound(h.files.retrieve('alice', id), id);
        expect(findVisible).not.toHaveBeenCalled();
      },
    );
  });

  describe('list', () => {
    it("lists only the owner's visible files, newest first, with first_id/last_id/has_more", async () => {
      const h = filesHarness();
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const received = await h.uploads.receive('alice', partOf('x'), `f${i}.jsonl`, {});
        ids.push((await h.uploads.complete(received, { purpose: 'batch' })).id);
        h.clock.advance(1000);
      }
      h.repository.seedReady({ ownerId: 'bob', bytes: 1, createdAt: T0, expiresAt: new Date(T0.getTime() + DAY_MS) });

      const page = await h.files.list('alice', { limit: 2, order: 'desc' });
      expect(page).toMatchObject({ object: 'list', first_id: ids[2], last_id: ids[1], has_more: true });
      expect(page.data.map((f) => f.id)).toEqual([ids[2], ids[1]]);
      const rest = await h.files.list('alice', { limit: 2, order: 'desc', after: ids[1] });
      expect(rest).toMatchObject({ first_id: ids[0], last_id: ids[0], has_more: false });
    });

    it('answers an empty list with null first_id and last_id', async () => {
      const h = filesHarness();
      await expect(h.files.list('alice', { limit: 10, order: 'asc' })).resolves.toEqual({
        object: 'list',
        data: [],
        first_id: null,
        last_id: null,
        has_more: false,
      });
    });
  });

  describe('openContent', () => {
    it('streams the stored bytes', async () => {
      const { files, file } = await withAliceFile();
      const content = await files.openDownload('alice', file.id);
      expect(content.file.id).toBe(file.id);
      expect(content.range).toBeUndefined();
      expect(await readAll(content.body)).toBe(CONTENT);
    });

    it('streams a requested byte range', async () => {
      const { files, file } = await withAliceFile();
      const content = await files.openDownload('alice', file.id, 'bytes=2-11');
      expect(content.range).toEqual({ start: 2, end: 11 });
      expect(await readAll(content.body)).toBe(CONTENT.slice(2, 12));
    });

    it('refuses a range past the end with range_not_satisfiable, before touching storage', async () => {
      const { files, file, storage } = await withAliceFile();
      const openRead = jest.spyOn(storage, 'openRead');
      const error = await rejectedFilesError(files.openDownload('alice', file.id, `bytes=${CONTENT.length}-`));
      expect(error.code).toBe(FilesErrorCode.RangeNotSatisfiable);
      expect(openRead).not.toHaveBeenCalled();
    });

    it("answers not found for another owner's file without opening it", async () => {
      const { files, file, storage } = await withAliceFile();
      const openRead = jest.spyOn(storage, 'openRead');
      await expectNotFound(files.openDownload('bob', file.id), file.id);
      expect(openRead).not.toHaveBeenCalled();
    });

    it('refuses with 503, and closes the stream, when the stored size differs from the metadata', async () => {
      const { files, file, storage, key } = await withAliceFile();
      storage.seed(key, CONTENT.slice(0, -1));
      const opened = jest.spyOn(storage, 'openRead');
      const error = await rejectedFilesError(files.openDownload('alice', file.id));
      expect(error.code).toBe(FilesErrorCode.ServiceUnavailable);
      expect(error.message).not.toMatch(/stored bytes|\d+ bytes/);
      const stream = await opened.mock.results[0].value;
      expect(stream.body.destroyed).toBe(true);
      expect(logs.messages('error').join('\n')).toContain(file.id);
    });

    it('refuses with 503 when the bytes are missing from storage', async () => {
      const { files, file, storage, key } = await withAliceFile();
      await storage.delete(key);
      const error = await rejectedFilesError(files.openDownload('alice', file.id));
      expect(error.code).toBe(FilesErrorCode.ServiceUnavailable);
    });

    it('lets a storage outage surface as StorageUnavailableError', async () => {
      const { files, file, storage } = await withAliceFile();
      storage.failures.openRead = new StorageUnavailableError('storage unavailable');
      await expect(files.openDownload('alice', file.id)).rejects.toBeInstanceOf(StorageUnavailableError);
    });
  });

  describe('delete', () => {
    it('removes bytes and metadata and releases the quota at once', async () => {
      const { files, file, storage, repository } = await withAliceFile();
      expect(repository.usageOf('alice')).toBe(CONTENT.length);
      await expect(files.delete('alice', file.id)).resolves.toEqual({ id: file.id, object: 'file', deleted: true });
      expect(storage.keys()).toEqual([]);
      expect(repository.stateOf(file.id)).toBeUndefined();
      expect(repository.usageOf('alice')).toBe(0);
      await expectNotFound(files.retrieve('alice', file.id), file.id);
    });

    it('answers not found for a second delete', async () => {
      const { files, file } = await withAliceFile();
      await files.delete('alice', file.id);
      await expectNotFound(files.delete('alice', file.id), file.id);
    });

    it("answers not found for another owner's file and leaves it untouched", async () => {
      const { files, file, storage, repository, key } = await withAliceFile();
      await expectNotFound(files.delete('bob', file.id), file.id);
      expect(storage.read(key)?.toString()).toBe(CONTENT);
      expect(repository.stateOf(file.id)).toBe('ready');
      expect(repository.usageOf('alice')).toBe(CONTENT.length);
    });

    it.each(['file_does-not-exist', 'file_01jd5x7k9m3n4p5q6r7s8t9v0w', ''])('answers not found for %p', async (id) => {
      const h = filesHarness();
      await expectNotFound(h.files.delete('alice', id), id);
    });

    it('answers not found for an expired file', async () => {
      const { files, file, clock } = await withAliceFile();
      clock.advance(30 * DAY_MS);
      await expectNotFound(files.delete('alice', file.id), file.id);
    });

    it('still succeeds, and logs, when storage cannot delete the bytes; the tombstone stays for the sweeper', async () => {
      const { files, file, storage, repository, key } = await withAliceFile();
      storage.failures.delete = new StorageUnavailableError('storage unavailable');
      await expect(files.delete('alice', file.id)).resolves.toEqual({ id: file.id, object: 'file', deleted: true });
      expect(logs.messages('warn').join('\n')).toContain(file.id);
      expect(repository.stateOf(file.id)).toBe('deleting');
      expect(repository.usageOf('alice')).toBe(0);
      expect(storage.read(key)).toBeDefined();
      await expectNotFound(files.retrieve('alice', file.id), file.id);
      const listed = await files.list('alice', { limit: 10, order: 'desc' });
      expect(listed.data).toEqual([]);
    });

    it('fails, changing nothing, when the database is down', async () => {
      const { files, file, storage, repository, key } = await withAliceFile();
      repository.failures.tombstone = new Error('database unavailable');
      await expect(files.delete('alice', file.id)).rejects.toThrow('database unavailable');
      expect(storage.read(key)).toBeDefined();
      expect(repository.stateOf(file.id)).toBe('ready');
    });
  });
});
