import request from 'supertest';
import { BASES, startHarness, type Harness } from '../support/http/harness';
import { clientFor, expectOpenAiError, jsonlBytes, uploadForm, type FileObject } from '../support/http/api';
import { multipart } from '../support/http/multipart';
import { expectNothingLeftBehind, residue } from '../support/http/residue';

type Call = (base: string, id: string) => request.Test;

describe('authentication (every endpoint)', () => {
  let h: Harness;
  let file: FileObject;
  beforeAll(async () => {
    h = await startHarness();
    file = await clientFor(h, BASES[0]).create(h.alice, { data: jsonlBytes(123) });
  });
  afterAll(async () => h?.close());

  const form = multipart(uploadForm({ purpose: 'batch' }));
  const ENDPOINTS: [string, Call][] = [
    ['POST /files', (base) => request(h.t.origin).post(base).set('Content-Type', form.contentType).send(form.body)],
    ['GET /files', (base) => request(h.t.origin).get(base)],
    ['GET /files/{id}', (base, id) => request(h.t.origin).get(`${base}/${id}`)],
    ['GET /files/{id}/content', (base, id) => request(h.t.origin).get(`${base}/${id}/content`)],
    ['DELETE /files/{id}', (base, id) => request(h.t.origin).delete(`${base}/${id}`)],
  ];
  /** The three ways of the contract, on every endpoint. */
  const BAD_CREDENTIALS: [string, string | undefined, RegExp][] = [
    ['no Authorization header', undefined, /didn't provide an API key/],
    ['the Basic scheme', `Basic ${Buffer.from('alice:sk-test-alice-0000000001').toString('base64')}`, /Incorrect API key/],
    ['an unknown key', 'Bearer sk-test-mallory-00000000', /Incorrect API key/],
  ];
  /** Near misses of a real key, on one endpoint. */
  const NEAR_MISSES: [string, string, RegExp][] = [
    ['an empty Authorization header', '', /didn't provide an API key/],
    ['a bare key without a scheme', 'sk-test-alice-0000000001', /Incorrect API key/],
    ['Bearer with no key', 'Bearer ', /Incorrect API key|didn't provide/],
    ['a known key with a suffix', 'Bearer sk-test-alice-0000000001x', /Incorrect API key/],
    ['a prefix of a known key', 'Bearer sk-test-alice-000000000', /Incorrect API key/],
    ['two keys', 'Bearer sk-test-alice-0000000001 sk-test-bob-00000000002', /Incorrect API key/],
  ];

  describe.each(BASES)('under %s', (base) => {
    describe.each(ENDPOINTS)('%s', (_name, call) => {
      it.each(BAD_CREDENTIALS)('answers 401 invalid_api_key for %s and changes nothing', async (_label, header, message) => {
        const before = await residue(h);
        let req = call(base, file.id);
        if (header !== undefined) req = req.set('Authorization', header);
        const res = await req;
        expectOpenAiError(res, 401, { code: 'invalid_api_key', param: null, message });
        // The presented key is never echoed back.
        expect(JSON.stringify(res.body)).not.toContain('sk-test-');
        await expectNothingLeftBehind(h, before);
      });

      it('answers 401 before looking at the file id (no 404 for an unknown id)', async () => {
        const res = await call(base, 'file_does_not_exist').set('Authorization', 'Bearer sk-nobody-000000');
        expectOpenAiError(res, 401, { code: 'invalid_api_key', param: null });
      });
    });

    it.each(NEAR_MISSES)('answers 401 invalid_api_key for %s', async (_label, header, message) => {
      const res = await request(h.t.origin).get(`${base}/${file.id}`).set('Authorization', header);
      expectOpenAiError(res, 401, { code: 'invalid_api_key', param: null, message });
    });

    it('accepts the scheme name in any case', async () => {
      const res = await request(h.t.origin).get(`${base}/${file.id}`).set('Authorization', `bearer ${h.alice.key}`);
      expect(res.status).toBe(200);
      expect(res.body.id).toBe(file.id);
    });
  });

  it('leaves the file in place after every refused request', async () => {
    const res = await clientFor(h, BASES[1]).content(h.alice, file.id);
    expect(res.status).toBe(200);
    expect((res.body as Buffer).equals(jsonlBytes(123))).toBe(true);
  });
});
