import request from 'supertest';
import { BASES, startHarness, type Harness } from '../support/http/harness';
import { clientFor, expectOpenAiError, jsonlBytes } from '../support/http/api';
import { abandonRequest, multipart, rawRequest } from '../support/http/multipart';
import { eventuallyNothingLeftBehind, expectNothingLeftBehind, residue, rowOf } from '../support/http/residue';

describe('POST /files (multipart framing and filenames)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
    await clientFor(h, BASES[0]).create(h.bob, { data: jsonlBytes(300) });
  });
  afterAll(async () => h?.close());

  /** Sends `body` as is, with a Content-Length, and returns the response. */
  const send = (base: string, contentType: string | undefined, body: Buffer) =>
    rawRequest(h.t.origin, {
      method: 'POST',
      path: base,
      headers: { Authorization: h.alice.auth, ...(contentType ? { 'Content-Type': contentType } : {}) },
      chunks: [body],
    });
  const asResponse = (res: Awaited<ReturnType<typeof send>>) => ({ status: res.status, body: res.json, headers: res.headers as Record<string, string> });

  describe.each(BASES)('under %s', (base) => {
    const api = () => clientFor(h, base);

    it.each([
      ['a JSON body', 'application/json', Buffer.from(JSON.stringify({ purpose: 'batch', file: 'eyJhIjoxfQ==' }))],
      ['a url-encoded body', 'application/x-www-form-urlencoded', Buffer.from('purpose=batch&file=abc')],
      ['a text body', 'text/plain', Buffer.from('hello')],
      ['a body without Content-Type', undefined, Buffer.from('hello')],
      ['multipart/form-data without a boundary', 'multipart/form-data', multipart([{ name: 'purpose', value: 'batch' }]).body],
    ])('refuses %s with 400 invalid_multipart and stores nothing', async (_label, contentType, body) => {
      const before = await residue(h);
      const res = await send(base, contentType, body);
      expectOpenAiError(asResponse(res), 400, { code: 'invalid_multipart', param: null, message: /multipart/ });
      await expectNothingLeftBehind(h, before);
    });

    it('refuses a multipart body cut off inside the file part (no closing boundary) and removes the partial bytes', async () => {
      const { body, contentType } = multipart([
        { name: 'purpose', value: 'batch' },
        { name: 'file', filename: 'cut.jsonl', data: jsonlBytes(200_000) },
      ]);
      const before = await residue(h);
      const res = await send(base, contentType, body.subarray(0, 150_000));
      expectOpenAiError(asResponse(res), 400, { code: 'invalid_multipart', param: null });
      await expectNothingLeftBehind(h, before);
    });

    it('refuses a multipart body missing only its closing boundary', async () => {
      const { body, contentType, boundary } = multipart([
        { name: 'purpose', value: 'batch' },
        { name: 'file', filename: 'cut.jsonl', data: jsonlBytes(1000) },
      ]);
      const before = await residue(h);
      const res = await send(base, contentType, body.subarray(0, body.length - `--${boundary}--\r\n`.length));
      expectOpenAiError(asResponse(res), 400, { code: 'invalid_multipart', param: null });
      await expectNothingLeftBehind(h, before);
    });

    it('refuses a body that is not multipart at all despite its Content-Type', async () => {
      const before = await residue(h);
      const res = await send(base, 'multipart/form-data; boundary=XYZ', Buffer.from('this is not a form\r\n'));
      expectOpenAiError(asResponse(res), 400, { code: 'invalid_multipart', param: null });
      await expectNothingLeftBehind(h, before);
    });

    it('refuses two file parts with 400 invalid_multipart (param file) and keeps neither', async () => {
      const before = await residue(h);
      const res = await api().postForm(h.alice, [
        { name: 'purpose', value: 'batch' },
        { name: 'file', filename: 'one.jsonl', data: jsonlBytes(100) },
        { name: 'file', filename: 'two.jsonl', data: jsonlBytes(100) },
      ]);
      expectOpenAiError(res, 400, { code: 'invalid_multipart', param: 'file' });
      await expectNothingLeftBehind(h, before);
    });

    it('refuses a file part under another field name, naming that field', async () => {
      const before = await residue(h);
      const res = await api().postForm(h.alice, [
        { name: 'purpose', value: 'batch' },
        { name: 'document', filename: 'doc.jsonl', data: jsonlBytes(100) },
      ]);
      expectOpenAiError(res, 400, { code: 'invalid_multipart', param: 'document' });
      await expectNothingLeftBehind(h, before);
    });

    it('refuses a form with too many fields', async () => {
      const before = await residue(h);
      const res = await api().postForm(h.alice, [
        ...Array.from({ length: 9 }, (_, i) => ({ name: `f${i}`, value: 'x' })),
        { name: 'file', filename: 'a.jsonl', data: jsonlBytes(10) },
      ]);
      expectOpenAiError(res, 400, { code: 'invalid_multipart', param: null });
      await expectNothingLeftBehind(h, before);
    });

    it('answers an early refusal even when a large file part follows (the body is drained, not stored)', async () => {
      const before = await residue(h);
      const res = await api().postForm(h.alice, [
        { name: 'purpose', value: 'fine-tune' },
        { name: 'file', filename: 'big.jsonl', data: jsonlBytes(4 * 1024 * 1024) },
      ]);
      expectOpenAiError(res, 400, { code: 'unsupported_purpose', param: 'purpose' });
      await expectNothingLeftBehind(h, before);
    });

    it('leaves nothing behind when the client disconnects mid-upload', async () => {
      const { body, contentType } = multipart([
        { name: 'purpose', value: 'batch' },
        { name: 'file', filename: 'gone.jsonl', data: jsonlBytes(1024 * 1024) },
      ]);
      const before = await residue(h);
      await abandonRequest(
        h.t.origin,
        base,
        { Authorization: h.alice.auth, 'Content-Type': contentType },
        [body.subarray(0, 100_000), body.subarray(100_000, 300_000)],
        body.length,
      );
      await eventuallyNothingLeftBehind(h, before);
      // And the service still works for the same owner.
      expect((await api().upload(h.alice)).status).toBe(200);
    });
  });

  describe('client filenames', () => {
    const api = () => clientFor(h, BASES[1]);

    /** Uploads with a raw Content-Disposition for the file part and returns the file and its download. */
    async function uploadNamed(disposition: string) {
      const owner = h.owner();
      const res = await api().postForm(owner, [
        { name: 'purpose', value: 'batch' },
        { name: 'file', filename: '', data: jsonlBytes(20), disposition },
      ]);
      expect(res.status).toBe(200);
      const download = await api().content(owner, res.body.id);
      expect(download.status).toBe(200);
      const listed = await api().list(owner);
      return { file: res.body, download, listed: listed.body.data[0], row: await rowOf(h, res.body.id) };
    }

    it.each([
      ['a Unix path traversal', 'form-data; name="file"; filename="../../etc/passwd"', 'passwd'],
      ['a Windows path', 'form-data; name="file"; filename="..\\\\..\\\\Windows\\\\evil.jsonl"', 'evil.jsonl'],
      ['an absolute path', 'form-data; name="file"; filename="/var/lib/data.jsonl"', 'data.jsonl'],
      ['a name of only control characters', 'form-data; name="file"; filename="%0D%0A"', 'file'],
    ])('strips %s down to a bare name and never uses it for storage', async (_label, disposition, expected) => {
      const before = await residue(h);
      const { file, download, listed, row } = await uploadNamed(disposition);
      expect(file.filename).toBe(expected);
      expect(listed.filename).toBe(expected);
      expect(row?.filename).toBe(expected);
      expect(download.headers['content-disposition']).toBe(`attachment; filename="${expected}"; filename*=UTF-8''${encodeURIComponent(expected)}`);
      // The only new object is keyed by the id, whatever the client called the file.
      expect((await residue(h)).objects).toEqual([...before.objects, `files/${file.id}`].sort());
    });

    it.each([
      ['WHATWG-escaped CR LF', 'form-data; name="file"; filename="evil%0D%0AX-Injected: yes.jsonl"'],
      ['RFC 5987 CR LF', "form-data; name=\"file\"; filename*=UTF-8''evil%0D%0AX-Injected%3A%20yes.jsonl"],
    ])('removes %s from the name so no header can be injected into the download', async (_label, disposition) => {
      const { file, download, row } = await uploadNamed(disposition);
      expect(file.filename).toBe('evilX-Injected: yes.jsonl');
      expect(row?.filename).toBe('evilX-Injected: yes.jsonl');
      expect(download.headers['x-injected']).toBeUndefined();
      expect(download.headers['content-disposition']).toBe(
        `attachment; filename="evilX-Injected: yes.jsonl"; filename*=UTF-8''evilX-Injected%3A%20yes.jsonl`,
      );
    });

    it('keeps quotes and percent signs in the name but not in the quoted header parameter', async () => {
      const { file, download } = await uploadNamed('form-data; name="file"; filename="say%22hi%22 100%.jsonl"');
      expect(file.filename).toBe('say"hi" 100%.jsonl');
      expect(download.headers['content-disposition']).toBe(
        `attachment; filename="say_hi_ 100_.jsonl"; filename*=UTF-8''say%22hi%22%20100%25.jsonl`,
      );
    });

    it('keeps a UTF-8 name exactly and gives an ASCII fallback in the header', async () => {
      const name = 'résumé 📄 données.jsonl';
      const { file, download } = await uploadNamed(`form-data; name="file"; filename="${name}"`);
      expect(file.filename).toBe(name);
      const header = String(download.headers['content-disposition']);
      expect(header).toMatch(/^attachment; filename="r_sum_ _+ donn_es\.jsonl"; filename\*=UTF-8''/);
      expect(decodeURIComponent(header.split("filename*=UTF-8''")[1])).toBe(name);
    });

    it('shortens a very long name to 255 UTF-8 bytes, keeping the extension', async () => {
      const { file } = await uploadNamed(`form-data; name="file"; filename="${'a'.repeat(400)}.jsonl"`);
      expect(Buffer.byteLength(file.filename)).toBe(255);
      expect(file.filename.endsWith('.jsonl')).toBe(true);
    });
  });

  it('refuses an upload before authentication only with 401 (nothing parsed, nothing stored)', async () => {
    const before = await residue(h);
    const { body, contentType } = multipart([
      { name: 'purpose', value: 'batch' },
      { name: 'file', filename: 'a.jsonl', data: jsonlBytes(100) },
    ]);
    const res = await request(h.t.origin).post(BASES[0]).set('Content-Type', contentType).send(body);
    expectOpenAiError(res, 401, { code: 'invalid_api_key', param: null });
    await expectNothingLeftBehind(h, before);
  });
});
