import { BASES, startHarness, type Harness } from '../support/http/harness';
import { binaryBytes, clientFor, expectOpenAiError, type FileObject } from '../support/http/api';
import { insertPlatformFile } from '../support/http/platform';

const SIZE = 1000;

describe('GET /files/{id}/content', () => {
  let h: Harness;
  let file: FileObject;
  const data = binaryBytes(SIZE);
  beforeAll(async () => {
    h = await startHarness();
    file = await clientFor(h, BASES[0]).create(h.alice, { data, filename: 'requests.jsonl' });
  });
  afterAll(async () => h?.close());

  describe.each(BASES)('under %s', (base) => {
    const api = () => clientFor(h, base);

    it('streams the exact bytes as an attachment with length and a safe filename', async () => {
      const res = await api().content(h.alice, file.id);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect(res.headers['content-length']).toBe(String(SIZE));
      expect(res.headers['content-disposition']).toBe(`attachment; filename="requests.jsonl"; filename*=UTF-8''requests.jsonl`);
      expect(res.headers['accept-ranges']).toBe('bytes');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(Buffer.compare(res.body as Buffer, data)).toBe(0);
    });

    it.each([
      ['bytes=0-9', 0, 9],
      ['bytes=10-', 10, SIZE - 1],
      ['bytes=-5', SIZE - 5, SIZE - 1],
      ['bytes=990-5000', 990, SIZE - 1],
      [`bytes=${SIZE - 1}-${SIZE - 1}`, SIZE - 1, SIZE - 1],
      ['bytes=-5000', 0, SIZE - 1],
    ])('answers Range %s with 206 and exactly that slice', async (range, start, end) => {
      const res = await api().content(h.alice, file.id, { Range: range });
      expect(res.status).toBe(206);
      expect(res.headers['content-range']).toBe(`bytes ${start}-${end}/${SIZE}`);
      expect(res.headers['content-length']).toBe(String(end - start + 1));
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect(Buffer.compare(res.body as Buffer, data.subarray(start, end + 1))).toBe(0);
    });

    it.each([`bytes=${SIZE}-`, `bytes=${SIZE + 10}-${SIZE + 20}`, 'bytes=-0'])('answers the unsatisfiable Range %s with 416', async (range) => {
      const res = await api().content(h.alice, file.id, { Range: range });
      expectOpenAiError(res, 416, { code: 'range_not_satisfiable', param: 'range', message: new RegExp(`${SIZE} bytes`) });
      expect(res.headers['content-range']).toBe(`bytes */${SIZE}`);
    });

    it.each(['items=0-5', 'bytes=5-2', 'bytes=0-1,3-4', 'bytes=abc', 'bytes=-'])('ignores the Range %p it does not honour and sends the whole file', async (range) => {
      const res = await api().content(h.alice, file.id, { Range: range });
      expect(res.status).toBe(200);
      expect(res.headers['content-range']).toBeUndefined();
      expect(Buffer.compare(res.body as Buffer, data)).toBe(0);
    });

    it('serves platform-created batch-output files', async () => {
      const owner = h.owner();
      const output = await insertPlatformFile(h, owner, { bytes: 77, filename: 'batch_abc_output.jsonl' });
      const res = await api().content(owner, output.id);
      expect(res.status).toBe(200);
      expect(res.headers['content-disposition']).toBe(`attachment; filename="batch_abc_output.jsonl"; filename*=UTF-8''batch_abc_output.jsonl`);
      expect(Buffer.compare(res.body as Buffer, output.data)).toBe(0);
    });
  });
});
