import request from 'supertest';
import { BASES, startHarness, type Harness } from '../support/http/harness';
import { clientFor, expectOpenAiError, type FileObject } from '../support/http/api';
import { expectNothingLeftBehind, residue } from '../support/http/residue';

describe('routing, health and request ids', () => {
  let h: Harness;
  let file: FileObject;
  beforeAll(async () => {
    h = await startHarness();
    file = await clientFor(h, BASES[0]).create(h.alice);
  });
  afterAll(async () => h?.close());

  describe('unknown routes', () => {
    it.each([
      ['GET', '/v1/nope'],
      ['GET', '/v1/openai/nope'],
      ['POST', '/v1/chat/completions'],
      ['GET', '/'],
      ['GET', '/v2/files'],
      ['DELETE', '/v1/files/a/b/c'],
    ])('answers %s %s with an OpenAI-shaped 404', async (method, path) => {
      const res = await request(h.t.origin)[method.toLowerCase() as 'get'](path).set('Authorization', h.alice.auth);
      expectOpenAiError(res, 404, { code: 'unknown_url', param: null, message: `Unknown request URL: ${method} ${path}.` });
    });
  });

  describe.each(BASES)('wrong methods under %s', (base) => {
    it.each([
      ['PUT', '', 'GET, POST'],
      ['PATCH', '', 'GET, POST'],
      ['DELETE', '', 'GET, POST'],
      ['POST', '/{id}', 'GET, DELETE'],
      ['PUT', '/{id}', 'GET, DELETE'],
      ['PATCH', '/{id}', 'GET, DELETE'],
      ['POST', '/{id}/content', 'GET'],
      ['PUT', '/{id}/content', 'GET'],
      ['DELETE', '/{id}/content', 'GET'],
    ])('answers %s %s with 405, Allow: %s, and changes nothing', async (method, suffix, allow) => {
      const before = await residue(h);
      const res = await request(h.t.origin)
        [method.toLowerCase() as 'put'](`${base}${suffix.replace('{id}', file.id)}`)
        .set('Authorization', h.alice.auth);
      expectOpenAiError(res, 405, { code: 'method_not_allowed', param: null });
      expect(res.headers.allow).toBe(allow);
      await expectNothingLeftBehind(h, before);
    });
  });

  describe('health', () => {
    it('answers /healthz with 200 without credentials', async () => {
      const res = await request(h.t.origin).get('/healthz');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ status: 'ok' });
    });

    it('answers /readyz with 200 and the check of each backend', async () => {
      const res = await request(h.t.origin).get('/readyz');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        status: 'ok',
        draining: false,
        checks: { database: { status: 'ok' }, storage: { status: 'ok' } },
      });
    });
  });

  describe('x-request-id', () => {
    const get = (path: string, id?: string) => {
      const req = request(h.t.origin).get(path).set('Authorization', h.alice.auth);
      return id === undefined ? req : req.set('x-request-id', id);
    };
    const GENERATED = /^req_[0-9a-f]{32}$/;

    it.each([
      ['a success', `${BASES[0]}/{id}`],
      ['a 404', `${BASES[1]}/file_nope`],
      ['a 400', `${BASES[1]}?limit=0`],
      ['an unknown route', '/v1/nope'],
      ['the health check', '/healthz'],
    ])('echoes a sane client id on %s', async (_label, path) => {
      const res = await get(path.replace('{id}', file.id), 'client-req.42:abc_DEF');
      expect(res.headers['x-request-id']).toBe('client-req.42:abc_DEF');
    });

    it('echoes it on a 401', async () => {
      const res = await request(h.t.origin).get(BASES[0]).set('x-request-id', 'abc-401');
      expect(res.status).toBe(401);
      expect(res.headers['x-request-id']).toBe('abc-401');
    });

    it.each([
      ['absent', undefined],
      ['too long', 'a'.repeat(129)],
      ['containing spaces', 'has spaces'],
      ['containing a quote', 'abc"def'],
      ['empty', ''],
    ])('generates a fresh id when the client id is %s', async (_label, id) => {
      const res = await get(BASES[0], id);
      expect(res.status).toBe(200);
      expect(res.headers['x-request-id']).toMatch(GENERATED);
    });

    it('keeps a 128-character client id', async () => {
      const id = 'b'.repeat(128);
      expect((await get(BASES[0], id)).headers['x-request-id']).toBe(id);
    });

    it('generates a different id for every request', async () => {
      const ids = await Promise.all([1, 2, 3, 4].map(() => get(BASES[1]).then((r) => r.headers['x-request-id'])));
      expect(new Set(ids).size).toBe(4);
      for (const id of ids) expect(id).toMatch(GENERATED);
    });
  });
});
