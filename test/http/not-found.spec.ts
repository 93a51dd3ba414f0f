import request from 'supertest';
import { newFileId } from '../../src/files/file-id';
import { BASES, startHarness, type Harness } from '../support/http/harness';
import { clientFor, expectOpenAiError, type FileObject } from '../support/http/api';
import { expectNothingLeftBehind, residue } from '../support/http/residue';

type Endpoint = 'retrieve' | 'content' | 'delete';

/**
 * Every way a file can be out of reach must look the same on every by-id endpoint: 404, the id
 * in the message, param "id", no code, and no change anywhere.
 */
describe('GET/DELETE /files/{id} for files that are not there', () => {
  let h: Harness;
  const ids: Record<string, string> = {};
  beforeAll(async () => {
    h = await startHarness();
    const api = clientFor(h, BASES[0]);
    const deleted = await api.create(h.alice);
    expect((await api.delete(h.alice, deleted.id)).status).toBe(200);
    const expired: FileObject = await api.create(h.alice, { seconds: 3600 });
    const bobs = await api.create(h.bob);
    await api.create(h.alice); // a live file of alice's, so her usage row is not trivially empty
    h.t.clock.advance(3600 * 1000 + 1000); // `expired` is now past expires_at; no sweep has run
    Object.assign(ids, {
      'an unknown id': newFileId(Date.now()).publicId,
      'a deleted file': deleted.id,
      'an expired file (not yet swept)': expired.id,
      "another owner's file": bobs.id,
    });
  });
  afterAll(async () => h?.close());

  const KINDS = ['an unknown id', 'a deleted file', 'an expired file (not yet swept)', "another owner's file"];
  const MALFORMED = ['file-abc123', 'abc', 'file_', 'FILE_01ARZ3NDEKTSV4RRFFQ69G5FAV', `file_${'z'.repeat(26)}`, 'x'.repeat(300), 'file_ü', "'; DROP TABLE files;--"];
  const ENDPOINTS: Endpoint[] = ['retrieve', 'content', 'delete'];

  const call = (base: string, endpoint: Endpoint, id: string) => clientFor(h, base)[endpoint](h.alice, id);

  describe.each(BASES)('under %s', (base) => {
    describe.each(ENDPOINTS)('%s', (endpoint) => {
      it.each(KINDS)('answers 404 for %s, naming the id, and changes nothing', async (kind) => {
        const id = ids[kind];
        const before = await residue(h);
        const res = await call(base, endpoint, id);
        expectOpenAiError(res, 404, { code: null, param: 'id' });
        expect(res.body.error.message).toContain(id);
        await expectNothingLeftBehind(h, before);
      });

      it.each(MALFORMED)('answers 404 for the malformed id %p', async (id) => {
        const res = await call(base, endpoint, id);
        expectOpenAiError(res, 404, { code: null, param: 'id' });
        expect(res.body.error.message).toContain(id.slice(0, 100));
      });
    });

    it('answers 404 for an id with an encoded path traversal', async () => {
      const res = await request(h.t.origin).get(`${base}/..%2F..%2Fetc%2Fpasswd`).set('Authorization', h.alice.auth);
      expectOpenAiError(res, 404, { code: null, param: 'id', message: /etc/ });
    });
  });

  it('keeps the expired file out of the list as well', async () => {
    const list = await clientFor(h, BASES[0]).list(h.alice);
    expect(list.body.data.map((f: { id: string }) => f.id)).not.toContain(ids['an expired file (not yet swept)']);
    expect(list.body.data).toHaveLength(1);
  });
});
