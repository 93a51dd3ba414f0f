import { BASES, startHarness, type Harness } from '../support/http/harness';
import { binaryBytes, clientFor, expectOpenAiError, jsonlBytes } from '../support/http/api';
import { multipart, rawRequest } from '../support/http/multipart';
import { expectNothingLeftBehind, residue, rowOf, usageOf } from '../support/http/residue';

const MiB = 1024 * 1024;
const LIMIT = 10 * MiB; // above the adapter's 8 MiB part size, so refusals happen mid multipart upload
const QUOTA = LIMIT;

/** The same HTTP contract on S3 storage: "nothing left behind" also means no open multipart upload. */
describe('the HTTP API on S3 storage', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ storage: 's3', env: { FILES_MAX_BATCH_FILE_BYTES: String(LIMIT), FILES_QUOTA_BYTES_PER_OWNER: String(QUOTA) } });
  });
  afterAll(async () => h?.close());

  describe.each(BASES)('under %s', (base) => {
    const api = () => clientFor(h, base);

    it('stores the bytes under an id-derived key and serves them back, whole and by range', async () => {
      const owner = h.owner();
      const data = binaryBytes(5000);
      const before = await residue(h);
      const file = await api().create(owner, { data, filename: '../x/out.bin' });
      expect(file).toMatchObject({ bytes: 5000, filename: 'out.bin', purpose: 'batch', status: 'processed' });
      expect((await residue(h)).objects).toEqual([...before.objects, `files/${file.id}`].sort());

      const whole = await api().content(owner, file.id);
      expect(whole.status).toBe(200);
      expect(whole.headers['content-length']).toBe('5000');
      expect(whole.headers['content-disposition']).toBe(`attachment; filename="out.bin"; filename*=UTF-8''out.bin`);
      expect(Buffer.compare(whole.body as Buffer, data)).toBe(0);

      const part = await api().content(owner, file.id, { Range: 'bytes=100-199' });
      expect(part.status).toBe(206);
      expect(part.headers['content-range']).toBe('bytes 100-199/5000');
      expect(Buffer.compare(part.body as Buffer, data.subarray(100, 200))).toBe(0);
      expect((await api().content(owner, file.id, { Range: 'bytes=5000-' })).status).toBe(416);
    });

    it('removes the object on delete and releases the quota', async () => {
      const owner = h.owner();
      const file = await api().create(owner, { data: jsonlBytes(1234) });
      expect(await usageOf(h, owner.name)).toBe(1234);
      const res = await api().delete(owner, file.id);
      expect(res.body).toEqual({ id: file.id, object: 'file', deleted: true });
      expect((await residue(h)).objects).not.toContain(`files/${file.id}`);
      expect(await rowOf(h, file.id)).toBeUndefined();
      expect(await usageOf(h, owner.name)).toBe(0);
    });

    it.each([
      ['a purpose that arrives after the file', [{ name: 'purpose', value: 'fine-tune' }], 'unsupported_purpose', 'purpose'],
      ['a bad expiry that arrives after the file', [{ name: 'purpose', value: 'batch' }, { name: 'expires_after[seconds]', value: '60' }], 'invalid_value', 'expires_after.seconds'],
    ])('refuses %s and deletes the stored object', async (_label, after, code, param) => {
      const before = await residue(h);
      const res = await api().postForm(h.owner(), [{ name: 'file', filename: 'a.jsonl', data: jsonlBytes(2000) }, ...after]);
      expectOpenAiError(res, 400, { code, param });
      await expectNothingLeftBehind(h, before);
    });

    it('refuses a form cut off inside the file part and leaves nothing behind', async () => {
      const { body, contentType } = multipart([
        { name: 'purpose', value: 'batch' },
        { name: 'file', filename: 'cut.jsonl', data: jsonlBytes(100_000) },
      ]);
      const before = await residue(h);
      const res = await rawRequest(h.t.origin, {
        method: 'POST', path: base, headers: { Authorization: h.alice.auth, 'Content-Type': contentType }, chunks: [body.subarray(0, 60_000)],
      });
      expect(res.status).toBe(400);
      expect(res.json.error.code).toBe('invalid_multipart');
      await expectNothingLeftBehind(h, before);
    });
  });

  // Multi-MiB bodies: once (under the DeepInfra-style base path), to keep the tier fast.
  describe('large bodies', () => {
    const base = BASES[0];

    it('takes a large (multipart) upload sent chunked without Content-Length', async () => {
      const owner = h.owner();
      const data = jsonlBytes(9 * MiB, 3);
      const { body, contentType } = multipart([
        { name: 'file', filename: 'big.jsonl', data },
        { name: 'purpose', value: 'batch' },
      ]);
      const chunks: Buffer[] = [];
      for (let i = 0; i < body.length; i += MiB) chunks.push(body.subarray(i, i + MiB));
      const res = await rawRequest(h.t.origin, {
        method: 'POST', path: base, headers: { Authorization: owner.auth, 'Content-Type': contentType }, chunks, chunked: true,
      });
      expect(res.status).toBe(200);
      expect(res.json.bytes).toBe(9 * MiB);
      const content = await clientFor(h, base).content(owner, res.json.id);
      expect(Buffer.compare(content.body as Buffer, data)).toBe(0);
      expect((await clientFor(h, base).delete(owner, res.json.id)).status).toBe(200);
    });

    it('refuses a file over the limit mid-stream with 413 and leaves no object and no open multipart upload', async () => {
      const before = await residue(h);
      const res = await clientFor(h, base).upload(h.owner(), { data: jsonlBytes(LIMIT + MiB) });
      expectOpenAiError(res, 413, { code: 'file_too_large', param: 'file' });
      await expectNothingLeftBehind(h, before);
    });

    it('refuses an upload over the owner quota and leaves nothing behind', async () => {
      const owner = h.owner();
      const kept = await clientFor(h, base).create(owner, { data: jsonlBytes(QUOTA - 1000) });
      const before = await residue(h);
      const res = await clientFor(h, base).upload(owner, { data: jsonlBytes(1001) });
      expectOpenAiError(res, 400, { code: 'quota_exceeded', param: 'file' });
      await expectNothingLeftBehind(h, before);
      expect((await clientFor(h, base).delete(owner, kept.id)).status).toBe(200);
    });
  });
});
