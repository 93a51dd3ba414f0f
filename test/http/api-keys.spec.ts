import request from 'supertest';
import { ApiKeysService } from '../../src/api-keys/api-keys.service';
import { startTestApp, type TestApp } from '../support/app';
import { FaultProxy } from '../support/fault-proxy';
import { BASES, startHarness, type Harness, type TestOwner } from '../support/http/harness';
import { clientFor, expectOpenAiError, FilesClient, jsonlBytes, type FileObject } from '../support/http/api';

/** A managed key made the way `npm run cli -- keys create` makes it, as a test owner. */
async function managedKey(app: TestApp, owner: string, name = ''): Promise<TestOwner & { id: string }> {
  const { key, record } = await app.app.get(ApiKeysService).create(owner, name);
  return { name: owner, key, auth: `Bearer ${key}`, id: record.id };
}

const expect401 = (res: request.Response, key?: string) => {
  expectOpenAiError(res, 401, { code: 'invalid_api_key', param: null, message: /Incorrect API key provided/ });
  if (key !== undefined) expect(JSON.stringify(res.body)).not.toContain(key);
};

const expect503 = (res: request.Response) => {
  expectOpenAiError(res, 503, { code: null, param: null, type: 'server_error', message: /temporarily unavailable/ });
  expect(res.headers['retry-after']).toBe('1');
};

describe('managed API keys (whole app, keys in PostgreSQL, API_KEY_CACHE_SECONDS=0)', () => {
  let h: Harness;
  let dora: TestOwner & { id: string };
  beforeAll(async () => {
    h = await startHarness({ env: { API_KEY_CACHE_SECONDS: '0' } });
    dora = await managedKey(h.t, 'dora', 'ci-bot');
  });
  afterAll(async () => h?.close());

  describe.each(BASES)('under %s', (base) => {
    const api = () => clientFor(h, base);

    it('a managed key uploads, lists, retrieves, downloads and deletes', async () => {
      const data = jsonlBytes(321, 7);
      const file = await api().create(dora, { data, filename: 'managed.jsonl' });
      expect(file).toMatchObject({ object: 'file', bytes: 321, filename: 'managed.jsonl', purpose: 'batch' });
      const rows = await h.db.query(`SELECT owner_id FROM files WHERE owner_id = 'dora'`);
      expect(rows.rows.length).toBeGreaterThan(0);

      const list = await api().list(dora);
      expect(list.status).toBe(200);
      expect(list.body.data.map((f: FileObject) => f.id)).toContain(file.id);

      const retrieved = await api().retrieve(dora, file.id);
      expect(retrieved.status).toBe(200);
      expect(retrieved.body).toEqual(file);

      const content = await api().content(dora, file.id);
      expect(content.status).toBe(200);
      expect((content.body as Buffer).equals(data)).toBe(true);

      const deleted = await api().delete(dora, file.id);
      expect(deleted.status).toBe(200);
      expect(deleted.body).toEqual({ id: file.id, object: 'file', deleted: true });
      expect((await api().retrieve(dora, file.id)).status).toBe(404);
    });

    it("keeps a managed key's owner and an API_KEYS owner apart, both ways, on every endpoint", async () => {
      const dorasFile = await api().create(dora, { filename: 'doras.jsonl' });
      const alicesFile = await api().create(h.alice, { filename: 'alices.jsonl' });
      for (const [stranger, file] of [
        [h.alice, dorasFile],
        [dora, alicesFile],
      ] as const) {
        for (const res of [await api().retrieve(stranger, file.id), await api().content(stranger, file.id), await api().delete(stranger, file.id)]) {
          expectOpenAiError(res, 404, { code: null, param: 'id' });
        }
        const listed = await api().list(stranger);
        expect(listed.status).toBe(200);
        expect(listed.body.data.map((f: FileObject) => f.id)).not.toContain(file.id);
      }
      // Both still there for their owners.
      expect((await api().retrieve(dora, dorasFile.id)).status).toBe(200);
      expect((await api().retrieve(h.alice, alicesFile.id)).status).toBe(200);
    });
  });

  it('a managed key of an owner who also has an API_KEYS key acts as that same owner', async () => {
    const alice2 = await managedKey(h.t, 'alice', 'second key');
    const file = await clientFor(h, BASES[1]).create(h.alice);
    expect((await clientFor(h, BASES[1]).retrieve(alice2, file.id)).body).toEqual(file);
    expect((await clientFor(h, BASES[1]).delete(alice2, file.id)).status).toBe(200);
  });

  it('API_KEYS keys keep working next to managed keys', async () => {
    for (const owner of [h.alice, h.bob, h.carol]) {
      expect((await clientFor(h, BASES[0]).list(owner)).status).toBe(200);
    }
  });

  it('answers 401 invalid_api_key to a well-formed managed key nobody created', async () => {
    const forged = `sk-files-${'A'.repeat(43)}`;
    expect401(await clientFor(h, BASES[0]).list({ name: 'x', key: forged, auth: `Bearer ${forged}` }), forged);
  });

  it('answers 401 invalid_api_key on every endpoint once the key is revoked, at once with the cache off', async () => {
    const erin = await managedKey(h.t, 'erin');
    const api = clientFor(h, BASES[1]);
    const file = await api.create(erin);
    expect((await h.t.app.get(ApiKeysService).revoke(erin.id)).status).toBe('revoked');
    for (const res of [await api.upload(erin), await api.list(erin), await api.retrieve(erin, file.id), await api.content(erin, file.id), await api.delete(erin, file.id)]) {
      expect401(res, erin.key);
    }
    // The file itself is untouched, just unreachable with that key.
    const row = await h.db.query(`SELECT state FROM files WHERE owner_id = 'erin'`);
    expect(row.rows).toEqual([{ state: 'ready' }]);
  });

  it('records when a key was last used', async () => {
    const fred = await managedKey(h.t, 'fred');
    const before = Date.now();
    expect((await clientFor(h, BASES[0]).list(fred)).status).toBe(200);
    // Written in the background: wait for it.
    let lastUsed: Date | null = null;
    for (let i = 0; i < 50 && lastUsed === null; i++) {
      lastUsed = (await h.db.query(`SELECT last_used_at FROM api_keys WHERE id = $1`, [fred.id])).rows[0].last_used_at;
      if (lastUsed === null) await new Promise((r) => setTimeout(r, 50));
    }
    expect(lastUsed).toBeInstanceOf(Date);
    expect(lastUsed!.getTime()).toBeGreaterThanOrEqual(before - 1000);
  });
});

describe('managed API keys with only managed keys (API_KEYS empty)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ storage: 'fs', env: { API_KEYS: '' } });
  });
  afterAll(async () => t?.close());

  it('authenticates managed keys and nothing else', async () => {
    const dora = await managedKey(t, 'dora');
    expect((await new FilesClient(t.origin, BASES[0]).list(dora)).status).toBe(200);
    const res = await request(t.origin).get(BASES[0]).set('Authorization', 'Bearer sk-test-alice-0000000001');
    expect401(res);
  });
});

describe('managed API keys with PostgreSQL behind a fault proxy (API_KEY_CACHE_SECONDS=60)', () => {
  let pg: FaultProxy;
  let t: TestApp;
  const api = () => new FilesClient(t.origin, BASES[1]);
  beforeAll(async () => {
    const target = new URL(process.env.TEST_DATABASE_URL!);
    pg = await FaultProxy.start({ host: target.hostname, port: Number(target.port || 5432) });
    t = await startTestApp({
      storage: 'fs',
      env: { API_KEY_CACHE_SECONDS: '60', DATABASE_CONNECT_TIMEOUT_MS: '1000' },
      rewriteEnv: (env) => ({ ...env, DATABASE_URL: pg.rewrite(env.DATABASE_URL!) }),
    });
  });
  afterEach(async () => pg.set('up'));
  afterAll(async () => {
    await t?.close();
    await pg?.close();
  });

  it('answers 503 (not 401) when the key cannot be looked up, and 401 again once the database is back', async () => {
    const unknown = `sk-files-${'B'.repeat(43)}`;
    const stranger = { name: 'x', key: unknown, auth: `Bearer ${unknown}` };
    await pg.set('down');
    expect503(await api().list(stranger));
    // A key that cannot be a managed key needs no lookup: still a 401.
    expect401(await request(t.origin).get(BASES[1]).set('Authorization', 'Bearer sk-nobody-0000000000'));
    await pg.set('up');
    expect401(await api().list(stranger), unknown);
  });

  it('answers 503 (not 401) to a new managed key while the database is down, 200 once it is back', async () => {
    const gina = await managedKey(t, 'gina');
    await pg.set('down');
    expect503(await api().list(gina));
    await pg.set('up');
    expect((await api().list(gina)).status).toBe(200);
  });

  it('keeps trusting a found key for API_KEY_CACHE_SECONDS after it is revoked, then refuses it', async () => {
    const hal = await managedKey(t, 'hal');
    expect((await api().list(hal)).status).toBe(200);
    await t.app.get(ApiKeysService).revoke(hal.id);
    expect((await api().list(hal)).status).toBe(200);
    t.clock.advance(60_000);
    expect401(await api().list(hal), hal.key);
  });
});
