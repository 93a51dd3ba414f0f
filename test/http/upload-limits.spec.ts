import { BASES, startHarness, type Harness } from '../support/http/harness';
import { clientFor, expectOpenAiError, jsonlBytes } from '../support/http/api';
import { multipart, rawRequest, startRequest } from '../support/http/multipart';
import { insertPlatformFile } from '../support/http/platform';
import { expectNothingLeftBehind, residue, usageOf } from '../support/http/residue';

const LIMIT = 1024;
const QUOTA = 2048;

describe('POST /files (size limit and owner quota)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      env: {
        FILES_MAX_BATCH_FILE_BYTES: String(LIMIT),
        FILES_QUOTA_BYTES_PER_OWNER: String(QUOTA),
        FILES_MAX_CONCURRENT_UPLOADS_PER_OWNER: '1',
      },
    });
  });
  afterAll(async () => h?.close());

  describe.each(BASES)('under %s', (base) => {
    const api = () => clientFor(h, base);

    it(`accepts a batch file of exactly FILES_MAX_BATCH_FILE_BYTES (${LIMIT})`, async () => {
      const owner = h.owner();
      const res = await api().upload(owner, { data: jsonlBytes(LIMIT) });
      expect(res.status).toBe(200);
      expect(res.body.bytes).toBe(LIMIT);
      expect(await usageOf(h, owner.name)).toBe(LIMIT);
    });

    it.each([
      ['one byte over, purpose first', LIMIT + 1, 'first'],
      ['one byte over, purpose after the file', LIMIT + 1, 'after'],
      ['far over (2 MiB), purpose first', 2 * 1024 * 1024, 'first'],
      ['far over (2 MiB), purpose after the file', 2 * 1024 * 1024, 'after'],
    ] as const)('refuses a file %s with 413 file_too_large and leaves nothing behind', async (_label, size, order) => {
      const owner = h.owner();
      const before = await residue(h);
      const res = await api().postForm(
        owner,
        order === 'first'
          ? [{ name: 'purpose', value: 'batch' }, { name: 'file', filename: 'big.jsonl', data: jsonlBytes(size) }]
          : [{ name: 'file', filename: 'big.jsonl', data: jsonlBytes(size) }, { name: 'purpose', value: 'batch' }],
      );
      expectOpenAiError(res, 413, { code: 'file_too_large', param: 'file', message: new RegExp(String(LIMIT)) });
      await expectNothingLeftBehind(h, before);
    });

    it('refuses an oversized chunked upload (no Content-Length) mid-stream with 413', async () => {
      const owner = h.owner();
      const { body, contentType } = multipart([
        { name: 'file', filename: 'big.jsonl', data: jsonlBytes(256 * 1024) },
        { name: 'purpose', value: 'batch' },
      ]);
      const before = await residue(h);
      const chunks: Buffer[] = [];
      for (let i = 0; i < body.length; i += 16 * 1024) chunks.push(body.subarray(i, i + 16 * 1024));
      const res = await rawRequest(h.t.origin, {
        method: 'POST',
        path: base,
        headers: { Authorization: owner.auth, 'Content-Type': contentType },
        chunks,
        chunked: true,
      });
      expectOpenAiError({ status: res.status, body: res.json, headers: res.headers as Record<string, string> }, 413, {
        code: 'file_too_large',
        param: 'file',
      });
      await expectNothingLeftBehind(h, before);
    });

    it('fills the quota exactly, refuses one byte more with 400 quota_exceeded, and takes uploads again right after a delete', async () => {
      const owner = h.owner();
      const first = await api().create(owner, { data: jsonlBytes(LIMIT) });
      await api().create(owner, { data: jsonlBytes(LIMIT) });
      expect(await usageOf(h, owner.name)).toBe(QUOTA);

      for (const parts of [
        [{ name: 'purpose', value: 'batch' }, { name: 'file', filename: 'one.jsonl', data: jsonlBytes(1) }],
        [{ name: 'file', filename: 'one.jsonl', data: jsonlBytes(1) }, { name: 'purpose', value: 'batch' }],
      ]) {
        const before = await residue(h);
        const res = await api().postForm(owner, parts);
        expectOpenAiError(res, 400, { code: 'quota_exceeded', param: 'file', message: /quota/ });
        await expectNothingLeftBehind(h, before);
      }

      expect((await api().delete(owner, first.id)).status).toBe(200);
      expect(await usageOf(h, owner.name)).toBe(LIMIT);
      const again = await api().upload(owner, { data: jsonlBytes(LIMIT) });
      expect(again.status).toBe(200);
      expect(await usageOf(h, owner.name)).toBe(QUOTA);
    });

    it('refuses an upload that fits the size limit but not the remaining quota', async () => {
      const owner = h.owner();
      await api().create(owner, { data: jsonlBytes(1000) });
      await api().create(owner, { data: jsonlBytes(900) });
      const before = await residue(h);
      const res = await api().upload(owner, { data: jsonlBytes(149) });
      expectOpenAiError(res, 400, { code: 'quota_exceeded', param: 'file' });
      await expectNothingLeftBehind(h, before);
      const fits = await api().upload(owner, { data: jsonlBytes(148) });
      expect({ status: fits.status, body: fits.body }).toMatchObject({ status: 200, body: { bytes: 148 } });
      expect(await usageOf(h, owner.name)).toBe(QUOTA);
    });

    it('counts batch-output files toward the quota', async () => {
      const owner = h.owner();
      await insertPlatformFile(h, owner, { bytes: 1500 });
      const before = await residue(h);
      const res = await api().upload(owner, { data: jsonlBytes(549) });
      expectOpenAiError(res, 400, { code: 'quota_exceeded', param: 'file' });
      await expectNothingLeftBehind(h, before);
      expect((await api().upload(owner, { data: jsonlBytes(548) })).status).toBe(200);
      expect(await usageOf(h, owner.name)).toBe(QUOTA);
    });

    it('keeps one owner at quota from affecting another owner', async () => {
      const full = h.owner();
      const other = h.owner();
      await api().create(full, { data: jsonlBytes(LIMIT) });
      await api().create(full, { data: jsonlBytes(LIMIT) });
      expect((await api().upload(full, { data: jsonlBytes(1) })).status).toBe(400);
      expect((await api().upload(other, { data: jsonlBytes(LIMIT) })).status).toBe(200);
    });
  });

  it('refuses a second concurrent upload of the same owner with 429 and Retry-After, and frees the slot afterwards', async () => {
    const owner = h.owner();
    const api = clientFor(h, BASES[1]);
    const { body, contentType } = multipart([
      { name: 'purpose', value: 'batch' },
      { name: 'file', filename: 'slow.jsonl', data: jsonlBytes(1000) },
    ]);
    const slow = startRequest(h.t.origin, BASES[1], { Authorization: owner.auth, 'Content-Type': contentType }, body, 300);
    // Until the server has taken the slot, a second upload may still get in: wait for the pending row.
    for (let i = 0; i < 100 && (await h.db.query(`SELECT 1 FROM files WHERE owner_id = $1`, [owner.name])).rowCount === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const before = await residue(h);
    const second = await api.upload(owner, { data: jsonlBytes(10) });
    expectOpenAiError(second, 429, { code: 'too_many_uploads', param: null });
    expect(second.headers['retry-after']).toBe('1');
    await expectNothingLeftBehind(h, before);
    // Another owner is not held back by it.
    expect((await api.upload(h.owner(), { data: jsonlBytes(10) })).status).toBe(200);

    const first = await slow.finish();
    expect(first.status).toBe(200);
    expect(first.json.bytes).toBe(1000);
    expect((await api.upload(owner, { data: jsonlBytes(10) })).status).toBe(200);
  });

  // Moves the shared clock forward, so it runs last.
  it('does not count expired files toward the quota, even before the sweeper runs', async () => {
    const api = clientFor(h, BASES[0]);
    const owner = h.owner();
    await api.create(owner, { data: jsonlBytes(LIMIT), seconds: 3600 });
    await api.create(owner, { data: jsonlBytes(LIMIT), seconds: 3600 });
    expect((await api.upload(owner, { data: jsonlBytes(1) })).status).toBe(400);

    h.t.clock.advance(3601 * 1000);
    const res = await api.upload(owner, { data: jsonlBytes(LIMIT) });
    expect(res.status).toBe(200);
    expect(await usageOf(h, owner.name)).toBe(LIMIT);
    const list = await api.list(owner);
    expect(list.body.data.map((f: { id: string }) => f.id)).toEqual([res.body.id]);
  });
});
