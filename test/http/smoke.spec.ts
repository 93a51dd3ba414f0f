import request from 'supertest';
import { KEYS, startTestApp, type TestApp } from '../support/app';

describe('smoke', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ storage: 's3' });
  });
  afterAll(async () => t?.close());

  it('uploads and lists a file', async () => {
    const created = await request(t.origin)
      .post('/v1/files')
      .set('Authorization', `Bearer ${KEYS.alice}`)
      .attach('file', Buffer.from('{"a":1}\n'), 'a.jsonl')
      .field('purpose', 'batch');
    expect(created.status).toBe(200);
    const list = await request(t.origin).get('/v1/files').set('Authorization', `Bearer ${KEYS.alice}`);
    expect(list.body.data.map((f: { id: string }) => f.id)).toEqual([created.body.id]);
  });
});
