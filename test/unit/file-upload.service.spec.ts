import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { parseFileId } from '../../src/files/file-id';
import { ClientDisconnectedError, FilesErrorCode, StorageUnavailableError } from '../../src/files/files.errors';
import { storageKeyFor } from '../../src/files/storage/storage-key';
import { FileUploadService, type ReceivedUpload } from '../../src/files/upload/file-upload.service';
import { rejectedFilesError } from './support/expect-files-error';
import { captureLogs, filesHarness, partOf, T0 } from './support/upload-fixtures';

const OWNER = 'alice';
const DAY_MS = 86_400_000;
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

describe(FileUploadService.name, () => {
  const logs = captureLogs();

  /** Asserts an upload left nothing: no object, no row, no change to usage. */
  function expectNothingLeft(h: ReturnType<typeof filesHarness>, usageBefore = 0): void {
    expect(h.storage.keys()).toEqual([]);
    expect(h.storage.writesInProgress).toBe(0);
    expect(h.repository.size).toBe(0);
    expect(h.repository.usageOf(OWNER)).toBe(usageBefore);
  }

  describe('a successful upload', () => {
    it('stores the bytes under a key derived from the id and commits the metadata', async () => {
      const h = filesHarness();
      const content = '{"custom_id":"1"}\n{"custom_id":"2"}\n';
      const received = await h.uploads.receive(OWNER, partOf(content.slice(0, 5), content.slice(5)), 'input.jsonl', {});
      const file = await h.uploads.complete(received, { purpose: 'batch' });

      expect(file).toEqual({
        id: received.publicId,
        ownerId: OWNER,
        purpose: 'batch',
        filename: 'input.jsonl',
        bytes: Buffer.byteLength(content),
        sha256: sha256(content),
        createdAt: T0,
        expiresAt: new Date(T0.getTime() + 30 * DAY_MS),
      });
      expect(parseFileId(file.id)?.timestampMs).toBe(T0.getTime());
      expect(h.storage.keys()).toEqual([storageKeyFor(file.id)]);
      expect(h.storage.read(storageKeyFor(file.id))?.toString()).toBe(content);
      expect(h.repository.stateOf(file.id)).toBe('ready');
      expect(h.repository.usageOf(OWNER)).toBe(Buffer.byteLength(content));
    });

    it('accepts fields sent before the file part', async () => {
      const h = filesHarness();
      const fields = { purpose: 'batch', expires_after: { anchor: 'created_at', seconds: '3600' } };
      const received = await h.uploads.receive(OWNER, partOf('x'), 'a.jsonl', { purpose: 'batch' });
      const file = await h.uploads.complete(received, fields);
      expect(file.expiresAt).toEqual(new Date(T0.getTime() + 3600 * 1000));
    });

    it('stores a sanitized filename and never uses it for the storage key', async () => {
      const h = filesHarness();
      const received = await h.uploads.receive(OWNER, partOf('x'), '../../etc/passwd\r\n', {});
      const file = await h.uploads.complete(received, { purpose: 'batch' });
      expect(file.filename).toBe('passwd');
      expect(h.storage.keys()).toEqual([`files/${file.id}`]);
    });

    it('accepts a batch file of exactly the batch size limit', async () => {
      const h = filesHarness({ maxBatchFileBytes: 1000 });
      const received = await h.uploads.receive(OWNER, partOf('a'.repeat(600), 'b'.repeat(400)), 'a.jsonl', {});
      expect((await h.uploads.complete(received, { purpose: 'batch' })).bytes).toBe(1000);
    });
  });

  describe('fields validated once the form is complete', () => {
    it.each([
      ['fine-tune', { purpose: 'fine-tune' }, FilesErrorCode.UnsupportedPurpose, 'purpose'],
      ['batch-output', { purpose: 'batch-output' }, FilesErrorCode.InvalidValue, 'purpose'],
      ['an unknown purpose', { purpose: 'assistants' }, FilesErrorCode.InvalidValue, 'purpose'],
      ['no purpose', {}, FilesErrorCode.MissingParameter, 'purpose'],
      ['a duplicated purpose', { purpose: ['batch', 'batch'] }, FilesErrorCode.InvalidValue, 'purpose'],
      ['too short an expiry', { purpose: 'batch', expires_after: { anchor: 'created_at', seconds: '3599' } }, FilesErrorCode.InvalidValue, 'expires_after.seconds'],
      ['a bad anchor', { purpose: 'batch', expires_after: '{"anchor":"now","seconds":3600}' }, FilesErrorCode.InvalidValue, 'expires_after.anchor'],
      ['an unknown field', { purpose: 'batch', model: 'x' }, FilesErrorCode.InvalidValue, 'model'],
    ])('refuses %s after storing the bytes, then removes bytes and row', async (_case, fields, code, param) => {
      const h = filesHarness();
      const deletePending = jest.spyOn(h.repository, 'deletePending');
      const received = await h.uploads.receive(OWNER, partOf('{"a":1}\n'), 'a.jsonl', {});
      expect(h.storage.keys()).toHaveLength(1);

      const error = await rejectedFilesError(h.uploads.complete(received, fields));
      expect({ code: error.code, param: error.param }).toEqual({ code, param });
      expect(deletePending).toHaveBeenCalledWith(received.uuid);
      expectNothingLeft(h);
    });

    it('refuses an empty file with empty_file and keeps nothing', async () => {
      const h = filesHarness();
      const received = await h.uploads.receive(OWNER, partOf(), 'empty.jsonl', {});
      expect(received.bytes).toBe(0);
      const error = await rejectedFilesError(h.uploads.complete(received, { purpose: 'batch' }));
      expect({ code: error.code, param: error.param }).toEqual({ code: FilesErrorCode.EmptyFile, param: 'file' });
      expectNothingLeft(h);
    });
  });

  describe('a purpose that arrives before the file', () => {
    it.each([
      ['fine-tune', FilesErrorCode.UnsupportedPurpose],
      ['batch-output', FilesErrorCode.InvalidValue],
      ['nonsense', FilesErrorCode.InvalidValue],
    ])('refuses %p before creating a row or storing a byte', async (purpose, code) => {
      const h = filesHarness();
      const put = jest.spyOn(h.storage, 'put');
      const createPending = jest.spyOn(h.repository, 'createPending');
      const error = await rejectedFilesError(h.uploads.receive(OWNER, partOf('{"a":1}\n'), 'a.jsonl', { purpose }));
      expect({ code: error.code, param: error.param }).toEqual({ code, param: 'purpose' });
      expect(put).not.toHaveBeenCalled();
      expect(createPending).not.toHaveBeenCalled();
      expectNothingLeft(h);
    });
  });

  it.each([
    ['an unknown field', { model: 'gpt' }, 'model'],
    ['a bad expiry', { expires_after: '{"anchor":"created_at","seconds":60}' }, 'expires_after.seconds'],
  ])('refuses %s that arrives before the file, before storing a byte', async (_case, fields, param) => {
    const h = filesHarness();
    const put = jest.spyOn(h.storage, 'put');
    const error = await rejectedFilesError(h.uploads.receive(OWNER, partOf('{"a":1}\n'), 'a.jsonl', fields));
    expect({ code: error.code, param: error.param }).toEqual({ code: FilesErrorCode.InvalidValue, param });
    expect(put).not.toHaveBeenCalled();
    expectNothingLeft(h);
  });

  describe('the size limit', () => {
    it('fails mid-stream with file_too_large at limit + 1, before the part has ended, storing nothing', async () => {
      const h = filesHarness({ maxBatchFileBytes: 1000 });
      const deletePending = jest.spyOn(h.repository, 'deletePending');
      const source = new PassThrough();
      const receiving = h.uploads.receive(OWNER, source, 'big.jsonl', { purpose: 'batch' });
      source.write(Buffer.alloc(600));
      source.write(Buffer.alloc(401));
      // The part is still open: the refusal must not wait for the rest of it.
      const error = await rejectedFilesError(receiving);
      expect(source.writableEnded).toBe(false);
      expect({ code: error.code, param: error.param }).toEqual({ code: FilesErrorCode.FileTooLarge, param: 'file' });
      expect(error.message).toContain('1000');
      expect(deletePending).toHaveBeenCalledTimes(1);
      expectNothingLeft(h);
      source.end(Buffer.alloc(10_000));
    });

    it('drains the rest of a refused part so the form parser can finish', async () => {
      const h = filesHarness({ maxBatchFileBytes: 10 });
      const source = new PassThrough();
      const receiving = h.uploads.receive(OWNER, source, 'big.jsonl', {});
      source.write(Buffer.alloc(11));
      await rejectedFilesError(receiving);
      const ended = new Promise((resolve) => source.once('end', resolve));
      source.end(Buffer.alloc(100_000));
      await expect(ended).resolves.toBeUndefined();
    });

    it('applies the batch limit when the purpose is not known yet', async () => {
      const h = filesHarness({ maxBatchFileBytes: 1000, maxFileBytes: 2000 });
      const error = await rejectedFilesError(h.uploads.receive(OWNER, partOf(Buffer.alloc(1001)), 'a.jsonl', {}));
      expect(error.code).toBe(FilesErrorCode.FileTooLarge);
      expectNothingLeft(h);
    });

    it('never accepts more than the file limit, even with a larger batch limit', async () => {
      const h = filesHarness({ maxBatchFileBytes: 5000, maxFileBytes: 2000 });
      const error = await rejectedFilesError(h.uploads.receive(OWNER, partOf(Buffer.alloc(2001)), 'a.jsonl', {}));
      expect(error.code).toBe(FilesErrorCode.FileTooLarge);
      expectNothingLeft(h);
    });
  });

  describe('the quota', () => {
    it('fails mid-stream with quota_exceeded when the quota left is smaller than the size limit', async () => {
      const h = filesHarness({ maxBatchFileBytes: 1000, quotaBytesPerOwner: 500 });
      const error = await rejectedFilesError(h.uploads.receive(OWNER, partOf(Buffer.alloc(300), Buffer.alloc(201)), 'a.jsonl', {}));
      expect({ code: error.code, param: error.param }).toEqual({ code: FilesErrorCode.QuotaExceeded, param: 'file' });
      expectNothingLeft(h);
    });

    it('counts the bytes the owner already holds', async () => {
      const h = filesHarness({ maxBatchFileBytes: 1000, quotaBytesPerOwner: 500 });
      h.repository.seedReady({ ownerId: OWNER, bytes: 400, createdAt: T0, expiresAt: new Date(T0.getTime() + DAY_MS) });
      const refused = await rejectedFilesError(h.uploads.receive(OWNER, partOf(Buffer.alloc(101)), 'a.jsonl', {}));
      expect(refused.code).toBe(FilesErrorCode.QuotaExceeded);
      expect(h.repository.usageOf(OWNER)).toBe(400);
      expect(h.storage.keys()).toEqual([]);

      const fits = await h.uploads.receive(OWNER, partOf(Buffer.alloc(100)), 'a.jsonl', {});
      await h.uploads.complete(fits, { purpose: 'batch' });
      expect(h.repository.usageOf(OWNER)).toBe(500);
    });

    it("does not count another owner's files", async () => {
      const h = filesHarness({ quotaBytesPerOwner: 500 });
      h.repository.seedReady({ ownerId: 'bob', bytes: 500, createdAt: T0, expiresAt: new Date(T0.getTime() + DAY_MS) });
      const received = await h.uploads.receive(OWNER, partOf(Buffer.alloc(500)), 'a.jsonl', {});
      await expect(h.uploads.complete(received, { purpose: 'batch' })).resolves.toMatchObject({ bytes: 500 });
    });

    it('does not count expired files that are not swept yet', async () => {
      const h = filesHarness({ quotaBytesPerOwner: 500 });
      h.repository.seedReady({ ownerId: OWNER, bytes: 400, createdAt: T0, expiresAt: new Date(T0.getTime() + 3600_000) });
      h.clock.advance(3600_000);
      const received = await h.uploads.receive(OWNER, partOf(Buffer.alloc(450)), 'a.jsonl', {});
      await h.uploads.complete(received, { purpose: 'batch' });
      expect(h.repository.usageOf(OWNER)).toBe(450);
    });

    it('refuses the first byte for an owner already over a lowered quota, but still reports an empty file as empty', async () => {
      const h = filesHarness({ quotaBytesPerOwner: 100 });
      h.repository.seedReady({ ownerId: OWNER, bytes: 150, createdAt: T0, expiresAt: new Date(T0.getTime() + DAY_MS) });
      const error = await rejectedFilesError(h.uploads.receive(OWNER, partOf('x'), 'a.jsonl', {}));
      expect(error.code).toBe(FilesErrorCode.QuotaExceeded);
      const empty = await h.uploads.receive(OWNER, partOf(), 'a.jsonl', {});
      expect((await rejectedFilesError(h.uploads.complete(empty, { purpose: 'batch' }))).code).toBe(FilesErrorCode.EmptyFile);
      expect(h.repository.usageOf(OWNER)).toBe(150);
    });

    it('refuses at commit an upload that a concurrent one left no room for, removing its bytes', async () => {
      const h = filesHarness({ quotaBytesPerOwner: 500 });
      const first = await h.uploads.receive(OWNER, partOf(Buffer.alloc(300)), 'a.jsonl', {});
      const second = await h.uploads.receive(OWNER, partOf(Buffer.alloc(300)), 'b.jsonl', {});
      const kept = await h.uploads.complete(first, { purpose: 'batch' });
      const error = await rejectedFilesError(h.uploads.complete(second, { purpose: 'batch' }));
      expect(error.code).toBe(FilesErrorCode.QuotaExceeded);
      expect(h.storage.keys()).toEqual([storageKeyFor(kept.id)]);
      expect(h.repository.stateOf(second.uuid)).toBeUndefined();
      expect(h.repository.usageOf(OWNER)).toBe(300);
    });
  });

  describe('failures', () => {
    it('rejects with the storage error when storage is down, keeping no row', async () => {
      const h = filesHarness();
      const down = new StorageUnavailableError('storage unavailable');
      h.storage.failures.put = down;
      const deletePending = jest.spyOn(h.repository, 'deletePending');
      await expect(h.uploads.receive(OWNER, partOf('{"a":1}\n'), 'a.jsonl', {})).rejects.toBe(down);
      expect(deletePending).toHaveBeenCalledTimes(1);
      expectNothingLeft(h);
    });

    it('rejects with the client-disconnect error when the part breaks off, keeping nothing', async () => {
      const h = filesHarness();
      const source = new PassThrough();
      const receiving = h.uploads.receive(OWNER, source, 'a.jsonl', {});
      source.write('{"partial":');
      const gone = new ClientDisconnectedError();
      source.destroy(gone);
      await expect(receiving).rejects.toBe(gone);
      expectNothingLeft(h);
    });

    it('creates no row and stores nothing when the database is down at the start', async () => {
      const h = filesHarness();
      h.repository.failures.liveUsage = new Error('database unavailable');
      const put = jest.spyOn(h.storage, 'put');
      await expect(h.uploads.receive(OWNER, partOf('x'), 'a.jsonl', {})).rejects.toThrow('database unavailable');
      expect(put).not.toHaveBeenCalled();
      expectNothingLeft(h);
    });

    it('leaves the pending row for the reconciler, and logs, when the bytes cannot be removed', async () => {
      const h = filesHarness();
      const received = await h.uploads.receive(OWNER, partOf('x'), 'a.jsonl', {});
      h.storage.failures.delete = new StorageUnavailableError('storage unavailable');
      const error = await rejectedFilesError(h.uploads.complete(received, { purpose: 'fine-tune' }));
      expect(error.code).toBe(FilesErrorCode.UnsupportedPurpose);
      expect(h.repository.stateOf(received.uuid)).toBe('pending');
      expect(h.repository.usageOf(OWNER)).toBe(0);
      expect(logs.messages('warn').join('\n')).toContain(received.publicId);
    });
  });

  describe('the heartbeat of a pending upload', () => {
    beforeEach(() => jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] }));
    afterEach(() => jest.useRealTimers());

    it('refreshes the pending row while the upload runs and stops once it is committed', async () => {
      const h = filesHarness();
      const touch = jest.spyOn(h.repository, 'touchPending');
      const received = await h.uploads.receive(OWNER, partOf('x'), 'a.jsonl', {});
      // staleAfterSeconds is 120: the row is refreshed well within that.
      await jest.advanceTimersByTimeAsync(60_000);
      expect(touch.mock.calls.length).toBeGreaterThanOrEqual(2);
      expect(touch).toHaveBeenCalledWith(received.uuid, expect.any(Date));
      await h.uploads.complete(received, { purpose: 'batch' });
      touch.mockClear();
      await jest.advanceTimersByTimeAsync(600_000);
      expect(touch).not.toHaveBeenCalled();
    });

    it('stops once a refused upload is cleaned up', async () => {
      const h = filesHarness();
      const touch = jest.spyOn(h.repository, 'touchPending');
      const received = await h.uploads.receive(OWNER, partOf('x'), 'a.jsonl', {});
      await rejectedFilesError(h.uploads.complete(received, { purpose: 'fine-tune' }));
      const limited = filesHarness({ maxBatchFileBytes: 1 });
      const limitedTouch = jest.spyOn(limited.repository, 'touchPending');
      await rejectedFilesError(limited.uploads.receive(OWNER, partOf('xy'), 'a.jsonl', {}));
      await jest.advanceTimersByTimeAsync(600_000);
      expect(touch).not.toHaveBeenCalled();
      expect(limitedTouch).not.toHaveBeenCalled();
    });
  });

  describe(FileUploadService.prototype.discard.name, () => {
    it('removes the bytes and the pending row of an uncommitted upload', async () => {
      const h = filesHarness();
      const received: ReceivedUpload = await h.uploads.receive(OWNER, partOf('x'), 'a.jsonl', {});
      await h.uploads.discard(received);
      expectNothingLeft(h);
    });

    it('never throws, even when storage is down', async () => {
      const h = filesHarness();
      const received = await h.uploads.receive(OWNER, partOf('x'), 'a.jsonl', {});
      h.storage.failures.delete = new StorageUnavailableError('storage unavailable');
      await expect(h.uploads.discard(received)).resolves.toBeUndefined();
    });
  });

  it('mints distinct ids for uploads started in the same millisecond', async () => {
    const h = filesHarness();
    const ids = await Promise.all(
      Array.from({ length: 20 }, async () => (await h.uploads.receive(OWNER, Readable.from([Buffer.from('x')]), 'a', {})).publicId),
    );
    expect(new Set(ids).size).toBe(20);
  });
});
