import request from 'supertest';
import { BASES, startHarness, type Harness } from '../support/http/harness';
import { clientFor, expectOpenAiError, jsonlBytes } from '../support/http/api';
import { expectNothingLeftBehind, residue } from '../support/http/residue';
import { newFileId } from '../../src/files/file-id';

/** Nothing listens here: connections are refused at once. */
const DEAD = '127.0.0.1:1';

const expect503 = (res: request.Response) => {
  expectOpenAiError(res, 503, { code: null, param: null, type: 'server_error', message: /temporarily unavailable/ });
  expect(res.headers['retry-after']).toBe('1');
};

describe('backends unavailable (503)', () => {
  describe('storage down (S3 endpoint refuses connections)', () => {
    let h: Harness;
    let id: string;
    beforeAll(async () => {
      h = await startHarness({ storage: 's3', env: { S3_ENDPOINT: `http://${DEAD}` } });
      // A committed file whose bytes storage cannot serve right now.
      const fileId = newFileId(Date.now());
      id = fileId.publicId;
      await h.db.query(
        `INSERT INTO files (id, owner_id, state, purpose, filename, bytes, created_at, expires_at, heartbeat_at)
         VALUES ($1::uuid, 'alice', 'ready', 'batch', 'a.jsonl', 10, now(), now() + interval '1 day', now())`,
        [fileId.uuid],
      );
      await h.db.query(`INSERT INTO owner_usage (owner_id, used_bytes) VALUES ('alice', 10)`);
    });
    afterAll(async () => h?.close());

    it.each(BASES)('refuses an upload under %s with 503 and leaves no row and no usage change', async (base) => {
      const before = await residue(h);
      expect503(await clientFor(h, base).upload(h.alice, { data: jsonlBytes(500) }));
      await expectNothingLeftBehind(h, before);
    });

    it.each(BASES)('answers content under %s with 503, while metadata still answers', async (base) => {
      expect503(await clientFor(h, base).content(h.alice, id));
      expect((await clientFor(h, base).retrieve(h.alice, id)).status).toBe(200);
      expect((await clientFor(h, base).list(h.alice)).body.data).toHaveLength(1);
    });

    it('reports not ready on /readyz, naming storage, while /healthz stays up', async () => {
      const ready = await request(h.t.origin).get('/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ status: 'unavailable', checks: { database: { status: 'ok' }, storage: { status: 'error' } } });
      expect((await request(h.t.origin).get('/healthz')).status).toBe(200);
    });
  });

  describe('database down (DATABASE_URL refuses connections)', () => {
    let h: Harness;
    beforeAll(async () => {
      h = await startHarness({ env: { DATABASE_URL: `postgres://postgres@${DEAD}/nowhere`, DATABASE_CONNECT_TIMEOUT_MS: '1000' } });
    });
    afterAll(async () => h?.close());

    describe.each(BASES)('under %s', (base) => {
      const id = newFileId(Date.now()).publicId;
      it.each([
        ['list', () => clientFor(h, base).list(h.alice)],
        ['retrieve', () => clientFor(h, base).retrieve(h.alice, id)],
        ['content', () => clientFor(h, base).content(h.alice, id)],
        ['delete', () => clientFor(h, base).delete(h.alice, id)],
      ])('answers %s with 503', async (_name, call) => {
        expect503(await call());
      });

      it('answers an upload with 503 and leaves no bytes in storage', async () => {
        const before = await residue(h); // h.db is the (healthy) test database the app cannot reach
        expect503(await clientFor(h, base).upload(h.alice, { data: jsonlBytes(300) }));
        await expectNothingLeftBehind(h, before);
      });
    });

    it('still authenticates first: a bad key is 401, not 503', async () => {
      expectOpenAiError(await request(h.t.origin).get(BASES[0]).set('Authorization', 'Bearer sk-unknown-0000'), 401, {
        code: 'invalid_api_key',
        param: null,
      });
    });

    it('reports not ready on /readyz, naming the database', async () => {
      const ready = await request(h.t.origin).get('/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ status: 'unavailable', checks: { database: { status: 'error' }, storage: { status: 'ok' } } });
    });
  });
});
