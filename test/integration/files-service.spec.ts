import { Injectable, Logger, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Pool } from 'pg';
import { Readable } from 'node:stream';
import {
  ExpirySweeper,
  FilesError,
  FilesErrorCode,
  FilesModule,
  FilesService,
  InjectFilesService,
  type FileContentSource,
  type FileCreatedEvent,
  type FileObject,
} from '../../src';
import { newFileId } from '../../src/files/file-id';
import { storageKeyFor } from '../../src/files/storage/storage-key';
import { createTestBucket, createTestDatabase, type TestBucket, type TestDatabase } from '../support/backends';
import { newOwner } from '../support/files-db';
import { expireNow, filesErrorOf, storedState } from '../support/host-app';
import { eventually, failingStream, MiB, randomContent, readAll, sha256, streamOf } from '../support/streams';

const LIMITS = { maxBatchFileBytes: 1000, maxFileBytes: 2000, quotaBytesPerOwner: 5000 };
const DAY_S = 86_400;

/** What a host's batch worker injects: the default instance, and a second one with large limits. */
@Injectable()
class BatchWorker {
  constructor(
    readonly files: FilesService,
    @InjectFilesService('big') readonly big: FilesService,
    readonly sweeper: ExpirySweeper,
  ) {}
}

describe('FilesService used by a host (FilesModule without routes, PostgreSQL, S3)', () => {
  let db: TestDatabase;
  let bucket: TestBucket;
  let app: INestApplicationContext;
  let pool: Pool;
  let files: FilesService;
  let big: FilesService;
  let sweeper: ExpirySweeper;

  beforeAll(async () => {
    [db, bucket] = await Promise.all([createTestDatabase(), createTestBucket()]);
    const database = { url: db.url, poolMax: 4 };
    @Module({
      imports: [
        FilesModule.forRoot({ routes: false, jobs: false, database, storage: bucket.settings, limits: LIMITS }),
        FilesModule.forRoot({
          name: 'big',
          routes: false,
          jobs: false,
          database,
          storage: bucket.settings,
          limits: { maxBatchFileBytes: 64 * MiB, maxFileBytes: 64 * MiB, quotaBytesPerOwner: 1024 * MiB },
        }),
      ],
      providers: [BatchWorker],
    })
    class WorkerModule {}
    // A worker process: an application context, no HTTP server at all.
    app = await NestFactory.createApplicationContext(WorkerModule, { logger: false });
    ({ files, big, sweeper } = app.get(BatchWorker));
    pool = new Pool({ connectionString: db.url, max: 2 });
  });

  afterAll(async () => {
    await app?.close();
    await pool?.end();
    await db?.drop();
    await bucket?.drop();
  });

  const state = (owner: string) => storedState(pool, owner, bucket);

  async function contentOf(ownerId: string, fileId: string, instance = files): Promise<Buffer> {
    return readAll((await instance.openContent(ownerId, fileId)).body);
  }

  /** Runs `work`, expecting it to fail with `code`, and that nothing of it is left anywhere. */
  async function expectRefusedLeavingNothing(owner: string, code: FilesErrorCode, work: () => Promise<unknown>, param?: string | null) {
    const before = await state(owner);
    const error = await filesErrorOf(work());
    expect(error.code).toBe(code);
    if (param !== undefined) expect(error.param).toBe(param);
    expect(await state(owner)).toEqual(before);
    return error;
  }

  describe('createFile', () => {
    const sources: [string, (content: Buffer) => FileContentSource][] = [
      ['a Readable', (content) => streamOf(content, 100)],
      [
        'an async generator',
        (content) =>
          (async function* () {
            for (let at = 0; at < content.length; at += 128) yield content.subarray(at, at + 128);
          })(),
      ],
      ['a Buffer', (content) => content],
      ['a Uint8Array', (content) => new Uint8Array(content)],
    ];

    it.each(sources)('stores content given as %s, byte for byte', async (_, source) => {
      const owner = newOwner();
      const content = randomContent(1500);
      const file = await files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'out.jsonl', content: source(content) });
      expect(file).toEqual({
        id: expect.stringMatching(/^file_[0-9a-z]{26}$/),
        object: 'file',
        bytes: 1500,
        created_at: expect.any(Number),
        expires_at: file.created_at + 30 * DAY_S,
        filename: 'out.jsonl',
        purpose: 'batch-output',
        status: 'processed',
      });
      expect(Math.abs(file.created_at - Date.now() / 1000)).toBeLessThan(60);
      expect(sha256(await contentOf(owner, file.id))).toBe(sha256(content));
      expect((await state(owner)).objects).toContain(storageKeyFor(file.id));
      await expect(files.usage(owner)).resolves.toEqual({ usedBytes: 1500, quotaBytes: 5000 });
    });

    it('stores a string as UTF-8', async () => {
      const owner = newOwner();
      const text = '{"custom_id":"é✓"}\n';
      const file = await files.createFile({ ownerId: owner, purpose: 'batch', filename: 'in.jsonl', content: text });
      expect(file.bytes).toBe(Buffer.byteLength(text));
      expect((await contentOf(owner, file.id)).toString('utf8')).toBe(text);
    });

    it('stores a batch-output file that is listed, filtered by purpose and retrievable', async () => {
      const owner = newOwner();
      const input = await files.createFile({ ownerId: owner, purpose: 'batch', filename: 'in.jsonl', content: 'a\n' });
      const output = await files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'out.jsonl', content: 'b\n' });
      await expect(files.retrieve(owner, output.id)).resolves.toEqual(output);
      expect((await files.list(owner, { purpose: 'batch-output' })).data).toEqual([output]);
      expect((await files.list(owner, { purpose: 'batch' })).data).toEqual([input]);
      expect((await files.list(owner)).data).toEqual([output, input]);
    });

    it('takes expiresAfterSeconds from 3600 to 2592000', async () => {
      const owner = newOwner();
      for (const seconds of [3600, 2_592_000]) {
        const file = await files.createFile({ ownerId: owner, purpose: 'batch', filename: 'f', content: 'x', expiresAfterSeconds: seconds });
        expect(file.expires_at - file.created_at).toBe(seconds);
      }
    });

    it('sanitizes the filename (directories and control characters removed), like an uploaded one', async () => {
      const owner = newOwner();
      const file = await files.createFile({
        ownerId: owner,
        purpose: 'batch',
        filename: '../../etc/pass\u0000wd\r\n.jsonl',
        content: 'x',
      });
      expect(file.filename).toBe('passwd.jsonl');
      const unnamed = await files.createFile({ ownerId: owner, purpose: 'batch', filename: '/', content: 'x' });
      expect(unnamed.filename).toBe('file');
    });

    describe('size limits', () => {
      it('refuses a batch-output file over maxFileBytes, leaving nothing', async () => {
        const owner = newOwner();
        await files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'ok', content: randomContent(2000) });
        await expectRefusedLeavingNothing(owner, FilesErrorCode.FileTooLarge, () =>
          files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'big', content: streamOf(randomContent(2001), 100) }),
        );
      });

      it('refuses a batch file over maxBatchFileBytes (and takes batch-output of that size), leaving nothing', async () => {
        const owner = newOwner();
        await expectRefusedLeavingNothing(owner, FilesErrorCode.FileTooLarge, () =>
          files.createFile({ ownerId: owner, purpose: 'batch', filename: 'big', content: randomContent(1001) }),
        );
        await expect(files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'o', content: randomContent(1001) })).resolves.toBeDefined();
      });

      it('applies size limits even with bypassQuota', async () => {
        const owner = newOwner();
        await expectRefusedLeavingNothing(owner, FilesErrorCode.FileTooLarge, () =>
          files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'big', content: randomContent(2001), bypassQuota: true }),
        );
      });

      it('refuses an empty file, leaving nothing', async () => {
        const owner = newOwner();
        await expectRefusedLeavingNothing(owner, FilesErrorCode.EmptyFile, () =>
          files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'empty', content: '' }),
        );
      });
    });

    describe('quota', () => {
      it('refuses a file past the quota without bypassQuota, leaving nothing', async () => {
        const owner = newOwner();
        for (let i = 0; i < 2; i++) await files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'o', content: randomContent(2000) });
        const error = await expectRefusedLeavingNothing(owner, FilesErrorCode.QuotaExceeded, () =>
          files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'o', content: streamOf(randomContent(1500), 100) }),
        );
        expect(error.message).toContain('5000');
        await expect(files.usage(owner)).resolves.toEqual({ usedBytes: 4000, quotaBytes: 5000 });
      });

      it('stores past the quota with bypassQuota, charges it, and refuses the next ordinary write', async () => {
        const owner = newOwner();
        for (let i = 0; i < 2; i++) await files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'o', content: randomContent(2000) });
        const content = randomContent(1500);
        const over = await files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'o', content, bypassQuota: true });
        expect(sha256(await contentOf(owner, over.id))).toBe(sha256(content));
        await expect(files.usage(owner)).resolves.toEqual({ usedBytes: 5500, quotaBytes: 5000 });

        await expectRefusedLeavingNothing(owner, FilesErrorCode.QuotaExceeded, () =>
          files.createFile({ ownerId: owner, purpose: 'batch', filename: 'in', content: 'x' }),
        );
        // Deleting brings the owner back under the quota.
        await files.delete(owner, over.id);
        await expect(files.usage(owner)).resolves.toEqual({ usedBytes: 4000, quotaBytes: 5000 });
        await expect(files.createFile({ ownerId: owner, purpose: 'batch', filename: 'in', content: 'x' })).resolves.toBeDefined();
      });
    });

    describe('a source that fails midway', () => {
      it('rejects with the stream error and leaves nothing', async () => {
        const owner = newOwner();
        const boom = new Error('upstream result stream broke');
        const before = await state(owner);
        await expect(
          files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'o', content: failingStream(randomContent(700), boom) }),
        ).rejects.toBe(boom);
        expect(await state(owner)).toEqual(before);
      });

      it('rejects with the async generator error and leaves nothing', async () => {
        const owner = newOwner();
        const boom = new Error('generator failed');
        const before = await state(owner);
        const content = (async function* () {
          yield Buffer.from('{"custom_id":"1"}\n');
          await new Promise((resolve) => setTimeout(resolve, 10));
          throw boom;
        })();
        await expect(files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'o', content })).rejects.toBe(boom);
        expect(await state(owner)).toEqual(before);
      });

      it('rejects past the first multipart part too, aborting the S3 multipart upload', async () => {
        const owner = newOwner();
        const boom = new Error('failed after 6 MiB');
        const before = await state(owner);
        await expect(
          big.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'o', content: failingStream(randomContent(6 * MiB), boom) }),
        ).rejects.toBe(boom);
        await eventually(async () => (await state(owner)).multipartUploads.length === 0, 10_000);
        expect(await state(owner)).toEqual(before);
      });

      it('stores a multi-part file whole', async () => {
        const owner = newOwner();
        const content = randomContent(11 * MiB);
        const file = await big.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'o', content: streamOf(content) });
        expect(file.bytes).toBe(content.length);
        const opened = await big.openContent(owner, file.id);
        expect(opened.sha256).toBe(sha256(content));
        expect(sha256(await readAll(opened.body))).toBe(sha256(content));
      });
    });

    describe('invalid input (FilesError invalid_value, nothing stored)', () => {
      const valid = () => ({ ownerId: newOwner(), purpose: 'batch' as const, filename: 'f', content: 'x' });

      it.each([
        ['an empty ownerId', { ownerId: '' }, 'owner'],
        ['no ownerId', { ownerId: undefined }, 'owner'],
        ['a non-string ownerId', { ownerId: 42 }, 'owner'],
        ['an unknown purpose', { purpose: 'nonsense' }, 'purpose'],
        ['purpose fine-tune', { purpose: 'fine-tune' }, 'purpose'],
        ['no purpose', { purpose: undefined }, 'purpose'],
        ['expiresAfterSeconds below 3600', { expiresAfterSeconds: 3599 }, 'expires_after.seconds'],
        ['expiresAfterSeconds above 2592000', { expiresAfterSeconds: 2_592_001 }, 'expires_after.seconds'],
        ['a fractional expiresAfterSeconds', { expiresAfterSeconds: 3600.5 }, 'expires_after.seconds'],
        ['expiresAfterSeconds NaN', { expiresAfterSeconds: Number.NaN }, 'expires_after.seconds'],
        ['expiresAfterSeconds as a string', { expiresAfterSeconds: '3600' }, 'expires_after.seconds'],
      ])('refuses %s', async (_, override, param) => {
        const input = { ...valid(), ...override } as Parameters<FilesService['createFile']>[0];
        const owner = typeof input.ownerId === 'string' && input.ownerId !== '' ? input.ownerId : newOwner();
        const before = await state(owner);
        const error = await filesErrorOf(files.createFile(input));
        expect({ code: error.code, param: error.param }).toEqual({ code: FilesErrorCode.InvalidValue, param });
        expect(await state(owner)).toEqual(before);
      });
    });
  });

  describe('openContent', () => {
    const owner = newOwner('reader');
    const content = randomContent(1500);
    let file: FileObject;

    beforeAll(async () => {
      file = await files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'out.jsonl', content });
    });

    it('streams the whole file with its length and SHA-256', async () => {
      const opened = await files.openContent(owner, file.id);
      expect({ file: opened.file, length: opened.length, range: opened.range, sha256: opened.sha256 }).toEqual({
        file,
        length: 1500,
        range: undefined,
        sha256: sha256(content),
      });
      expect((await readAll(opened.body)).equals(content)).toBe(true);
    });

    it.each([
      ['{start, end}', { start: 10, end: 19 }, { start: 10, end: 19 }],
      ['{start} only', { start: 1400 }, { start: 1400, end: 1499 }],
      ['end past the size (clamped)', { start: 1000, end: 99_999 }, { start: 1000, end: 1499 }],
      ['the last byte', { start: 1499, end: 1499 }, { start: 1499, end: 1499 }],
      ['the first byte', { start: 0, end: 0 }, { start: 0, end: 0 }],
    ])('streams a range given as %s', async (_, range, served) => {
      const opened = await files.openContent(owner, file.id, { range });
      expect(opened.range).toEqual(served);
      expect(opened.length).toBe(served.end - served.start + 1);
      expect(opened.sha256).toBe(sha256(content));
      expect((await readAll(opened.body)).equals(content.subarray(served.start, served.end + 1))).toBe(true);
    });

    it.each([1500, 1501, 10_000])('answers start %p (at or past the size) with range_not_satisfiable', async (start) => {
      const error = await filesErrorOf(files.openContent(owner, file.id, { range: { start } }));
      expect({ code: error.code, param: error.param }).toEqual({ code: FilesErrorCode.RangeNotSatisfiable, param: 'range' });
      expect(error.headers['Content-Range']).toBe('bytes */1500');
    });

    it.each([
      ['start > end', { start: 20, end: 10 }],
      ['a negative start', { start: -1 }],
      ['a fractional start', { start: 1.5 }],
      ['a fractional end', { start: 1, end: 2.5 }],
      ['a NaN end', { start: 1, end: Number.NaN }],
      ['a string start', { start: '1' }],
    ])('refuses %s as invalid_value', async (_, range) => {
      const error = await filesErrorOf(files.openContent(owner, file.id, { range: range as { start: number } }));
      expect({ code: error.code, param: error.param }).toEqual({ code: FilesErrorCode.InvalidValue, param: 'range' });
    });
  });

  describe('list', () => {
    const owner = newOwner('lister');
    const made: FileObject[] = [];

    beforeAll(async () => {
      for (const purpose of ['batch', 'batch-output', 'batch', 'batch-output', 'batch'] as const) {
        made.push(await files.createFile({ ownerId: owner, purpose, filename: `${purpose}.jsonl`, content: 'x' }));
        await new Promise((resolve) => setTimeout(resolve, 2)); // distinct id timestamps
      }
    });

    it('lists newest first by default, oldest first with order asc', async () => {
      expect((await files.list(owner)).data.map((f) => f.id)).toEqual(made.map((f) => f.id).reverse());
      expect((await files.list(owner, { order: 'asc' })).data.map((f) => f.id)).toEqual(made.map((f) => f.id));
    });

    it('pages with limit and after', async () => {
      const first = await files.list(owner, { limit: 2, order: 'asc' });
      expect(first).toMatchObject({ first_id: made[0].id, last_id: made[1].id, has_more: true });
      const second = await files.list(owner, { limit: 2, order: 'asc', after: first.last_id! });
      expect(second.data.map((f) => f.id)).toEqual([made[2].id, made[3].id]);
      const last = await files.list(owner, { limit: 2, order: 'asc', after: second.last_id! });
      expect(last).toMatchObject({ first_id: made[4].id, last_id: made[4].id, has_more: false });
    });

    it('filters by purpose', async () => {
      const outputs = await files.list(owner, { purpose: 'batch-output', order: 'asc' });
      expect(outputs.data.map((f) => f.id)).toEqual([made[1].id, made[3].id]);
      expect((await files.list(owner, { purpose: 'fine-tune' })).data).toEqual([]);
    });

    it.each([
      [{ limit: 0 }, 'limit'],
      [{ limit: 10_001 }, 'limit'],
      [{ limit: 1.5 }, 'limit'],
      [{ limit: -1 }, 'limit'],
      [{ limit: Number.NaN }, 'limit'],
      [{ order: 'sideways' }, 'order'],
      [{ after: 'file-123' }, 'after'],
      [{ after: '' }, 'after'],
      [{ purpose: 'nonsense' }, 'purpose'],
    ])('refuses %p as invalid_value', async (options, param) => {
      const error = await filesErrorOf(files.list(owner, options as Parameters<FilesService['list']>[1]));
      expect({ code: error.code, param: error.param }).toEqual({ code: FilesErrorCode.InvalidValue, param });
    });

    it('takes limit 1 and 10000', async () => {
      expect((await files.list(owner, { limit: 1 })).data).toHaveLength(1);
      expect((await files.list(owner, { limit: 10_000 })).data).toHaveLength(5);
    });
  });

  describe("another owner's file", () => {
    const owner = newOwner('holder');
    const other = newOwner('other');
    let file: FileObject;

    beforeAll(async () => {
      file = await files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'o', content: 'secret' });
    });

    /** The error with the id masked, to compare with the error for an id that never existed. */
    const shape = (error: FilesError, id: string) => ({ code: error.code, param: error.param, message: error.message.replace(id, '<id>') });
    const operations: [string, (s: FilesService, owner: string, id: string) => Promise<unknown>][] = [
      ['retrieve', (s, o, id) => s.retrieve(o, id)],
      ['openContent', (s, o, id) => s.openContent(o, id)],
      ['delete', (s, o, id) => s.delete(o, id)],
    ];

    it.each(operations)('%s: not found, exactly like an unknown id, and the file is untouched', async (_, operation) => {
      const unknown = newFileId(Date.now()).publicId;
      const theirs = await filesErrorOf(operation(files, other, file.id));
      const never = await filesErrorOf(operation(files, other, unknown));
      expect(theirs.code).toBe(FilesErrorCode.FileNotFound);
      expect(shape(theirs, file.id)).toEqual(shape(never, unknown));
      expect((await contentOf(owner, file.id)).toString()).toBe('secret');
    });

    it('delete twice: the second is not found', async () => {
      const mine = await files.createFile({ ownerId: owner, purpose: 'batch', filename: 'f', content: 'x' });
      await expect(files.delete(owner, mine.id)).resolves.toEqual({ id: mine.id, object: 'file', deleted: true });
      expect((await filesErrorOf(files.delete(owner, mine.id))).code).toBe(FilesErrorCode.FileNotFound);
      expect((await filesErrorOf(files.retrieve(owner, mine.id))).code).toBe(FilesErrorCode.FileNotFound);
      expect((await state(owner)).objects).not.toContain(storageKeyFor(mine.id));
    });
  });

  describe('events', () => {
    /** Records every event of `service` until the test ends. */
    function record(service: FilesService) {
      const seen: [string, unknown][] = [];
      const stops = (['file.created', 'file.deleted', 'file.expired'] as const).map((name) =>
        service.on(name, (event) => void seen.push([name, event])),
      );
      afterEachStops.push(...stops);
      return seen;
    }
    const afterEachStops: (() => void)[] = [];
    afterEach(() => afterEachStops.splice(0).forEach((stop) => stop()));

    it('file.created for createFile, delivered before createFile returns', async () => {
      const seen = record(files);
      const owner = newOwner();
      const file = await files.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'o', content: 'x' });
      expect(seen).toEqual([['file.created', { ownerId: owner, file }]]);
    });

    it('nothing for a refused createFile', async () => {
      const seen = record(files);
      const owner = newOwner();
      await filesErrorOf(files.createFile({ ownerId: owner, purpose: 'batch', filename: 'o', content: randomContent(1001) }));
      await filesErrorOf(files.createFile({ ownerId: owner, purpose: 'batch', filename: 'o', content: '' }));
      expect(seen).toEqual([]);
    });

    it('file.deleted once for a delete (not for the refused second one)', async () => {
      const owner = newOwner();
      const file = await files.createFile({ ownerId: owner, purpose: 'batch', filename: 'o', content: 'x' });
      const seen = record(files);
      await files.delete(owner, file.id);
      await filesErrorOf(files.delete(owner, file.id));
      expect(seen).toEqual([['file.deleted', { ownerId: owner, fileId: file.id }]]);
    });

    it('file.expired from ExpirySweeper.sweep() once expires_at has passed, and the usage is released', async () => {
      const owner = newOwner();
      const file = await files.createFile({ ownerId: owner, purpose: 'batch', filename: 'o', content: 'xyz' });
      await expireNow(pool, file.id);
      const seen = record(files);
      const report = await sweeper.sweep();
      expect(report).toMatchObject({ ran: true, failed: 0 });
      expect(report.expired).toBeGreaterThanOrEqual(1);
      expect(seen).toContainEqual(['file.expired', { ownerId: owner, fileId: file.id }]);
      expect(seen.every(([name]) => name === 'file.expired')).toBe(true);
      expect(await state(owner)).toMatchObject({ rows: [], usedBytes: 0 });
      expect((await state(owner)).objects).not.toContain(storageKeyFor(file.id));
      // Swept once: the next sweep has nothing of it.
      const again = record(files);
      await sweeper.sweep();
      expect(again).toEqual([]);
    });

    it("file.expired from the owner's next write, which finds the expired file at commit (before file.created)", async () => {
      const owner = newOwner();
      const old = await files.createFile({ ownerId: owner, purpose: 'batch', filename: 'old', content: 'old' });
      await expireNow(pool, old.id);
      const seen = record(files);
      const fresh = await files.createFile({ ownerId: owner, purpose: 'batch', filename: 'new', content: 'fresh' });
      expect(seen).toEqual([
        ['file.expired', { ownerId: owner, fileId: old.id }],
        ['file.created', { ownerId: owner, file: fresh }],
      ]);
      await expect(files.usage(owner)).resolves.toMatchObject({ usedBytes: 5 });
      // The sweeper later removes the bytes but does not announce the file a second time.
      const later = record(files);
      await sweeper.sweep();
      expect(later.filter(([, event]) => (event as { fileId?: string }).fileId === old.id)).toEqual([]);
    });

    it('a listener that throws or rejects breaks neither the call nor the other listeners, and is logged', async () => {
      const logged = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
      try {
        const stops = [
          files.on('file.created', () => {
            throw new Error('listener threw');
          }),
          files.on('file.created', async () => {
            throw new Error('listener rejected');
          }),
        ];
        afterEachStops.push(...stops);
        const seen = record(files);
        const owner = newOwner();
        const file = await files.createFile({ ownerId: owner, purpose: 'batch', filename: 'o', content: 'x' });
        expect(seen).toEqual([['file.created', { ownerId: owner, file }]]);
        await expect(files.retrieve(owner, file.id)).resolves.toEqual(file);
        await eventually(() => logged.mock.calls.length >= 2);
        const messages = logged.mock.calls.map((call) => String(call[0])).join('\n');
        expect(messages).toContain('listener threw');
        expect(messages).toContain('listener rejected');
      } finally {
        logged.mockRestore();
      }
    });

    it('unsubscribing stops delivery', async () => {
      const seen: FileCreatedEvent[] = [];
      const stop = files.on('file.created', (event) => void seen.push(event));
      const owner = newOwner();
      await files.createFile({ ownerId: owner, purpose: 'batch', filename: 'o', content: 'x' });
      stop();
      stop(); // twice is harmless
      await files.createFile({ ownerId: owner, purpose: 'batch', filename: 'o', content: 'x' });
      expect(seen).toHaveLength(1);
    });

    it('are per instance: a listener on one instance hears nothing of another (even over the same database)', async () => {
      const onFiles = record(files);
      const onBig = record(big);
      const owner = newOwner();
      const file = await big.createFile({ ownerId: owner, purpose: 'batch', filename: 'o', content: 'x' });
      await big.delete(owner, file.id);
      expect(onFiles).toEqual([]);
      expect(onBig.map(([name]) => name)).toEqual(['file.created', 'file.deleted']);
    });
  });

  it('the module instances are distinct services with their own limits', async () => {
    expect(big).not.toBe(files);
    const owner = newOwner();
    await expect(big.createFile({ ownerId: owner, purpose: 'batch', filename: 'o', content: randomContent(5000) })).resolves.toBeDefined();
    await expect(big.usage(owner)).resolves.toEqual({ usedBytes: 5000, quotaBytes: 1024 * MiB });
  });

  it('FilesError is what every refusal is (a host can switch on its code)', async () => {
    const error = await filesErrorOf(files.retrieve(newOwner(), 'file_nope'));
    expect(error).toBeInstanceOf(FilesError);
    expect(error.code).toBe('file_not_found');
  });

  it('accepts a Readable in object mode yielding strings', async () => {
    const owner = newOwner();
    const file = await files.createFile({ ownerId: owner, purpose: 'batch', filename: 'o', content: Readable.from(['a\n', 'b\n']) });
    expect((await contentOf(owner, file.id)).toString()).toBe('a\nb\n');
  });
});
