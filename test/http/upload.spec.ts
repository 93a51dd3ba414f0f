import { BASES, startHarness, type Harness } from '../support/http/harness';
import { binaryBytes, clientFor, jsonlBytes, uploadForm, type FileObject } from '../support/http/api';
import { multipart, rawRequest } from '../support/http/multipart';
import { residue, rowOf, storedBytes, usageOf } from '../support/http/residue';

const THIRTY_DAYS = 2_592_000;

describe('POST /files (accepted uploads)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => h?.close());

  const nowSeconds = () => Math.floor(h.t.clock.now().getTime() / 1000);

  describe.each(BASES)('under %s', (base) => {
    const api = () => clientFor(h, base);

    it('returns the FileObject with bytes, filename, purpose, status and a 30-day default expiry', async () => {
      const owner = h.owner();
      const data = jsonlBytes(321);
      const before = nowSeconds();
      const res = await api().upload(owner, { data, filename: 'requests.jsonl' });
      const after = nowSeconds();

      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const file = res.body as FileObject;
      expect(file).toEqual({
        id: expect.stringMatching(/^file_[0-9a-z]{26}$/),
        object: 'file',
        bytes: 321,
        created_at: expect.any(Number),
        expires_at: file.created_at + THIRTY_DAYS,
        filename: 'requests.jsonl',
        purpose: 'batch',
        status: 'processed',
      });
      expect(file.created_at).toBeGreaterThanOrEqual(before);
      expect(file.created_at).toBeLessThanOrEqual(after);
      // What the service says matches what it stored and charged.
      expect(await rowOf(h, file.id)).toEqual({ owner_id: owner.name, state: 'ready', purpose: 'batch', filename: 'requests.jsonl', bytes: '321' });
      expect((await storedBytes(h, file.id)).equals(data)).toBe(true);
      expect(await usageOf(h, owner.name)).toBe(321);
    });

    it('accepts fields sent after the file part', async () => {
      const owner = h.owner();
      const res = await api().postForm(owner, [
        { name: 'file', filename: 'late.jsonl', data: jsonlBytes(50) },
        { name: 'purpose', value: 'batch' },
        { name: 'expires_after[anchor]', value: 'created_at' },
        { name: 'expires_after[seconds]', value: '7200' },
      ]);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ bytes: 50, filename: 'late.jsonl', purpose: 'batch' });
      expect(res.body.expires_at - res.body.created_at).toBe(7200);
    });

    it('accepts fields split around the file part', async () => {
      const owner = h.owner();
      const res = await api().postForm(owner, [
        { name: 'expires_after[seconds]', value: '86400' },
        { name: 'file', filename: 'mid.jsonl', data: jsonlBytes(10) },
        { name: 'purpose', value: 'batch' },
      ]);
      expect(res.status).toBe(200);
      expect(res.body.expires_at - res.body.created_at).toBe(86400);
    });

    it.each([3600, 604800, THIRTY_DAYS])('sets expires_at = created_at + %i from expires_after[seconds]', async (seconds) => {
      const res = await api().upload(h.owner(), { seconds });
      expect(res.status).toBe(200);
      expect(res.body.expires_at).toBe(res.body.created_at + seconds);
    });

    it('accepts expires_after as one JSON-valued field', async () => {
      const res = await api().upload(h.owner(), {
        after: [{ name: 'expires_after', value: JSON.stringify({ anchor: 'created_at', seconds: 3600 }) }],
      });
      expect(res.status).toBe(200);
      expect(res.body.expires_at).toBe(res.body.created_at + 3600);
    });

    it('defaults the anchor when only expires_after[seconds] is given', async () => {
      const res = await api().upload(h.owner(), { after: [{ name: 'expires_after[seconds]', value: '5000' }] });
      expect(res.status).toBe(200);
      expect(res.body.expires_at).toBe(res.body.created_at + 5000);
    });

    it('serves back exactly the uploaded bytes, including bytes that are not UTF-8', async () => {
      const owner = h.owner();
      const data = binaryBytes(4096);
      const file = await api().create(owner, { data, filename: 'blob.bin' });
      expect(file.bytes).toBe(4096);
      const res = await api().content(owner, file.id);
      expect(res.status).toBe(200);
      expect(Buffer.compare(res.body as Buffer, data)).toBe(0);
    });

    it('gives every upload its own id', async () => {
      const owner = h.owner();
      const ids = await Promise.all([1, 2, 3].map(() => api().create(owner).then((f) => f.id)));
      expect(new Set(ids).size).toBe(3);
    });

    it('accepts a chunked upload with no Content-Length, file part first and fields after', async () => {
      const owner = h.owner();
      const data = binaryBytes(300_000);
      const { body, contentType } = multipart([
        { name: 'file', filename: 'chunked.bin', data },
        { name: 'purpose', value: 'batch' },
        { name: 'expires_after[anchor]', value: 'created_at' },
        { name: 'expires_after[seconds]', value: '3600' },
      ]);
      const pieces: Buffer[] = [];
      for (let i = 0; i < body.length; i += 64 * 1024) pieces.push(body.subarray(i, i + 64 * 1024));

      const res = await rawRequest(h.t.origin, {
        method: 'POST',
        path: base,
        headers: { Authorization: owner.auth, 'Content-Type': contentType },
        chunks: pieces,
        chunked: true,
        delayMs: 5,
      });

      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ object: 'file', bytes: 300_000, filename: 'chunked.bin', purpose: 'batch' });
      expect(res.json.expires_at - res.json.created_at).toBe(3600);
      const content = await api().content(owner, res.json.id);
      expect(Buffer.compare(content.body as Buffer, data)).toBe(0);
    });
  });

  it('makes a file uploaded under one base path visible under the other', async () => {
    const owner = h.owner();
    const file = await clientFor(h, BASES[0]).create(owner);
    const res = await clientFor(h, BASES[1]).retrieve(owner, file.id);
    expect(res.status).toBe(200);
    expect(res.body).toEqual(file);
  });

  it('changes rows, usage and stored objects (so the "nothing left behind" checks can fail)', async () => {
    const owner = h.owner();
    const before = await residue(h);
    const file = await clientFor(h, BASES[0]).create(owner, { data: jsonlBytes(77) });
    const after = await residue(h);
    expect(after.rows.length).toBe(before.rows.length + 1);
    expect(after.usage).toContainEqual({ owner_id: owner.name, used_bytes: '77' });
    expect(after.objects).toEqual([...before.objects, `files/${file.id}`].sort());
  });

  it('sends the form parts exactly as built (sanity check of the test helper)', () => {
    const { body } = multipart(uploadForm({ purpose: 'batch', data: Buffer.from('x') }), 'B');
    expect(body.toString()).toBe(
      '--B\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n' +
        '--B\r\nContent-Disposition: form-data; name="file"; filename="requests.jsonl"\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n' +
        '--B--\r\n',
    );
  });
});
