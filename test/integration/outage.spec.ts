import { createHash, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import { KEYS, startTestApp, type TestApp } from '../support/app';
import { eventually, residueOf, type Residue } from '../support/e2e/residue';
import { FaultProxy } from '../support/fault-proxy';
import { multipart, rawRequest, type RawResponse } from '../support/http/multipart';
import { Reconciler } from '../../src/files/reconcile/reconciler';
import { ExpirySweeper } from '../../src/files/expiry/expiry.sweeper';

/**
 * The service's S3 endpoint and its DATABASE_URL go through FaultProxy instances in front of the
 * real Swift and PostgreSQL, so each backend can be refused (`down`) or silenced (`hang`) while
 * the service runs, and brought back without restarting it. The test's own bucket client and
 * database connection talk to the real servers, so what was (not) written is checked directly.
 */

const MiB = 1024 * 1024;
/** "Fast": far under the service's default S3 (5 s connect, 30 s idle) and PostgreSQL (5 s connect) timeouts. */
const FAST_MS = 2_500;
const ALICE = `Bearer ${KEYS.alice}`;
const BASE = '/v1/files';

function target(url: string, defaultPort: number): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || defaultPort) };
}

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  const value = await work();
  return { value, ms: Date.now() - started };
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function upload(t: TestApp, data: Buffer, filename = 'outage.jsonl'): Promise<RawResponse> {
  const form = multipart([
    { name: 'purpose', value: 'batch' },
    { name: 'file', filename, data },
  ]);
  return rawRequest(t.origin, {
    method: 'POST',
    path: BASE,
    headers: { Authorization: ALICE, 'Content-Type': form.contentType },
    chunks: [form.body],
  });
}

const get = (t: TestApp, path: string) => rawRequest(t.origin, { method: 'GET', path, headers: { Authorization: ALICE }, chunks: [] });
const del = (t: TestApp, path: string) => rawRequest(t.origin, { method: 'DELETE', path, headers: { Authorization: ALICE }, chunks: [] });

/** 503 with the OpenAI error body of a server fault, and a Retry-After. */
function expectUnavailable(res: RawResponse): void {
  expect({ status: res.status, body: res.json }).toEqual({
    status: 503,
    body: { error: { message: expect.stringMatching(/temporarily unavailable/), type: 'server_error', param: null, code: null } },
  });
  expect(res.headers['retry-after']).toBe('1');
}

async function expectReadiness(t: TestApp, failing: 'storage' | 'database' | null): Promise<void> {
  const healthz = await rawRequest(t.origin, { method: 'GET', path: '/healthz', chunks: [] });
  expect(healthz.status).toBe(200);
  const readyz = await rawRequest(t.origin, { method: 'GET', path: '/readyz', chunks: [] });
  const checks = readyz.json?.checks;
  if (failing === null) {
    expect({ status: readyz.status, checks }).toEqual({ status: 200, checks: { database: { status: 'ok' }, storage: { status: 'ok' } } });
    return;
  }
  const healthy = failing === 'storage' ? 'database' : 'storage';
  expect({ status: readyz.status, status_: readyz.json?.status, failing: checks?.[failing]?.status, healthy: checks?.[healthy] }).toEqual({
    status: 503,
    status_: 'unavailable',
    failing: 'error',
    healthy: { status: 'ok' },
  });
  expect(checks[failing].error).toEqual(expect.any(String));
}

/** What an owner sees of the residue: rows, usage, keys, open uploads (for equality before/after). */
const snapshot = (r: Residue) => ({ keys: r.keys, openUploads: r.openUploads, rows: r.rows, usage: r.usage });

/**
 * A `POST /v1/files` streamed by hand (chunked): the fields and the file part's head at once,
 * then file bytes as the test sends them, then the closing boundary when the test finishes it.
 */
function streamingUpload(t: TestApp) {
  const boundary = `outage-${randomBytes(8).toString('hex')}`;
  let settle!: (r: { status: number; json: any; headers: http.IncomingHttpHeaders } | { error: Error }) => void;
  const outcome = new Promise<{ status: number; json: any; headers: http.IncomingHttpHeaders } | { error: Error }>((r) => (settle = r));
  const req = http.request(`${t.origin}${BASE}`, {
    method: 'POST',
    agent: false,
    headers: { authorization: ALICE, 'content-type': `multipart/form-data; boundary=${boundary}`, 'transfer-encoding': 'chunked' },
  });
  req.on('error', (error) => settle({ error }));
  req.on('response', (res) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = text;
      }
      settle({ status: res.statusCode ?? 0, json, headers: res.headers });
    });
  });
  req.write(
    `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="midstream.jsonl"\r\n` +
      'Content-Type: application/octet-stream\r\n\r\n',
  );
  return {
    async send(bytes: number): Promise<void> {
      const chunk = randomBytes(256 * 1024);
      for (let left = bytes; left > 0 && !req.destroyed; left -= chunk.length) {
        if (!req.write(left >= chunk.length ? chunk : chunk.subarray(0, left))) {
          await new Promise<void>((resolve) => {
            req.once('drain', resolve);
            req.once('close', resolve);
          });
        }
      }
    },
    finish(): void {
      req.end(`\r\n--${boundary}--\r\n`);
    },
    outcome,
  };
}

/**
 * The service on S3 with its S3 endpoint and database behind fault proxies, with `env` on top;
 * the proxies are back `up` after each test and everything is closed after the file.
 */
function proxiedApp(env: Record<string, string>) {
  const ctx = {} as { s3: FaultProxy; pg: FaultProxy; t: TestApp };
  beforeAll(async () => {
    ctx.s3 = await FaultProxy.start(target(process.env.TEST_S3_ENDPOINT!, 80));
    ctx.pg = await FaultProxy.start(target(process.env.TEST_DATABASE_URL!, 5432));
    ctx.t = await startTestApp({
      storage: 's3',
      env,
      rewriteEnv: (e) => ({ ...e, S3_ENDPOINT: ctx.s3.rewrite(e.S3_ENDPOINT!), DATABASE_URL: ctx.pg.rewrite(e.DATABASE_URL!) }),
    });
  });
  afterEach(async () => {
    await ctx.s3.set('up');
    await ctx.pg.set('up');
  });
  afterAll(async () => {
    await ctx.t?.close();
    await ctx.s3?.close();
    await ctx.pg?.close();
  });
  return ctx;
}

describe('outages: S3 and PostgreSQL refused, silent, and back (service on S3 through fault proxies)', () => {
  let s3: FaultProxy;
  let pg: FaultProxy;
  let t: TestApp;
  // A stale pending upload or incomplete write is one the reconciler may act on after 1 s.
  const ctx = proxiedApp({ FILES_PENDING_STALE_SECONDS: '1', S3_UPLOAD_PART_SIZE_BYTES: String(5 * MiB) });
  beforeAll(() => ({ s3, pg, t } = ctx));

  /** A file uploaded while everything is up. */
  async function seed(bytes = 4096): Promise<{ id: string; data: Buffer }> {
    const data = randomBytes(bytes);
    const res = await upload(t, data, 'seed.jsonl');
    if (res.status !== 200) throw new Error(`seed upload failed: ${res.status} ${res.body.toString()}`);
    return { id: res.json.id, data };
  }

  /** Runs the reconciler once as if its staleness window had passed. */
  async function reconcileOnce() {
    t.clock.advance(5_000);
    return t.app.get(Reconciler).reconcile({ repair: true });
  }

  describe('S3 refused (proxy down)', () => {
    it('answers uploads and downloads 503 fast, keeps answering lists and retrieves from metadata, reports not ready, and recovers without restart', async () => {
      const seeded = await seed();
      const before = snapshot(await residueOf(t));

      await s3.set('down');
      await expectReadiness(t, 'storage');

      const refusedUpload = await timed(() => upload(t, randomBytes(10_000)));
      expectUnavailable(refusedUpload.value);
      expect(refusedUpload.ms).toBeLessThan(FAST_MS);

      const refusedDownload = await timed(() => get(t, `${BASE}/${seeded.id}/content`));
      expectUnavailable(refusedDownload.value);
      expect(refusedDownload.ms).toBeLessThan(FAST_MS);

      // Metadata lives in PostgreSQL: the listing and the FileObject stay right (never empty, never stale).
      const list = await get(t, BASE);
      expect(list.status).toBe(200);
      expect(list.json.data.map((f: { id: string }) => f.id)).toEqual([seeded.id]);
      const retrieved = await get(t, `${BASE}/${seeded.id}`);
      expect(retrieved.status).toBe(200);
      expect(retrieved.json).toMatchObject({ id: seeded.id, bytes: seeded.data.length });

      // Nothing half-written: no object, no open multipart upload, no row, usage unchanged.
      expect(snapshot(await residueOf(t))).toEqual(before);

      await s3.set('up');
      await expectReadiness(t, null);
      const download = await get(t, `${BASE}/${seeded.id}/content`);
      expect(download.status).toBe(200);
      expect(sha256(download.body)).toBe(sha256(seeded.data));
      const again = randomBytes(10_000);
      const accepted = await upload(t, again);
      expect(accepted.status).toBe(200);
      expect(sha256((await get(t, `${BASE}/${accepted.json.id}/content`)).body)).toBe(sha256(again));
      await del(t, `${BASE}/${accepted.json.id}`);
      await del(t, `${BASE}/${seeded.id}`);
    });

    it('fails an upload already streaming into a multipart upload with 503, leaving no object, row, usage or (after one reconcile) open multipart upload', async () => {
      const before = snapshot(await residueOf(t));
      const stream = streamingUpload(t);
      await stream.send(6 * MiB);
      // Proof the bytes were under way in S3: a multipart upload is open in the bucket.
      await eventually(
        () => residueOf(t),
        (r) => r.openUploads.length === 1,
        10_000,
      );

      await s3.set('down');
      await stream.send(4 * MiB);
      const answered = await timed(async () => {
        stream.finish();
        return stream.outcome;
      });
      expect(answered.value).toMatchObject({ status: 503 });
      const res = answered.value as { status: number; json: any; headers: http.IncomingHttpHeaders };
      expectUnavailable({ status: res.status, json: res.json, headers: res.headers, body: Buffer.alloc(0) });
      expect(answered.ms).toBeLessThan(FAST_MS);

      // No object, no row, usage unchanged, even before S3 is back.
      const during = await residueOf(t);
      expect({ keys: during.keys, rows: during.rows, usage: during.usage }).toEqual({ keys: before.keys, rows: before.rows, usage: before.usage });

      await s3.set('up');
      // lib-storage could not abort the multipart upload while S3 was down; one reconcile does.
      const after = await residueOf(t);
      if (after.openUploads.length > 0) {
        const report = await reconcileOnce();
        expect(report).toMatchObject({ ran: true, abortedUploads: after.openUploads.length, failed: 0, lostObjects: 0 });
      }
      expect(snapshot(await residueOf(t))).toEqual(before);

      // The same upload succeeds now, without a restart.
      const ok = await upload(t, randomBytes(6 * MiB));
      expect(ok.status).toBe(200);
      await del(t, `${BASE}/${ok.json.id}`);
      expect(snapshot(await residueOf(t))).toEqual(before);
    });

    it('breaks a download in progress when S3 goes away: the client never gets a complete-looking body', async () => {
      const size = 48 * MiB;
      const seeded = await seed(size);

      const outcome = await new Promise<{ status: number; length: number; received: number; complete: boolean; error?: string }>(
        (resolve, reject) => {
          const req = http.get(`${t.origin}${BASE}/${seeded.id}/content`, { headers: { Authorization: ALICE }, agent: false }, (res) => {
            let received = 0;
            let error: string | undefined;
            const done = () =>
              resolve({ status: res.statusCode ?? 0, length: Number(res.headers['content-length']), received, complete: res.complete, error });
            res.once('data', (chunk: Buffer) => {
              received += chunk.length;
              // The transfer is under way; hold the client back, take S3 away, then read on.
              res.pause();
              void s3.set('down').then(() => {
                res.on('data', (c: Buffer) => (received += c.length));
                res.resume();
              });
            });
            res.on('aborted', () => (error ??= 'aborted'));
            res.on('error', (e) => (error ??= e.message));
            res.on('close', done);
          });
          req.on('error', reject);
        },
      );
      expect(outcome.status).toBe(200);
      expect(outcome.length).toBe(size);
      expect(outcome.received).toBeLessThan(size);
      expect(outcome.complete).toBe(false);

      await s3.set('up');
      const whole = await get(t, `${BASE}/${seeded.id}/content`);
      expect(whole.status).toBe(200);
      expect(sha256(whole.body)).toBe(sha256(seeded.data));
      await del(t, `${BASE}/${seeded.id}`);
    });

    it('takes a DELETE while S3 is down out of view and off the quota at once; the sweeper removes the bytes once S3 is back', async () => {
      const seeded = await seed(3000);
      const usageBefore = (await residueOf(t)).usage.alice;
      await s3.set('down');
      const res = await timed(() => del(t, `${BASE}/${seeded.id}`));
      expect({ status: res.value.status, body: res.value.json }).toEqual({ status: 200, body: { id: seeded.id, object: 'file', deleted: true } });
      expect(res.ms).toBeLessThan(FAST_MS);
      expect((await get(t, `${BASE}/${seeded.id}`)).status).toBe(404);
      const during = await residueOf(t);
      expect(during.usage.alice).toBe(usageBefore - 3000);
      expect(during.keys).toContain(`files/${seeded.id}`); // bytes still there: S3 refused the delete

      await s3.set('up');
      t.clock.advance(5_000);
      const report = await t.app.get(ExpirySweeper).sweep();
      expect(report).toMatchObject({ ran: true, purged: 1, failed: 0 });
      const after = await residueOf(t);
      expect(after.keys).not.toContain(`files/${seeded.id}`);
      expect(after.rows).toEqual([]);
    });
  });

  describe('PostgreSQL refused (proxy down)', () => {
    it('answers every endpoint 503 fast (never an empty or stale 200), stores nothing, reports not ready, and recovers without restart', async () => {
      const seeded = await seed();
      const before = snapshot(await residueOf(t));

      await pg.set('down');
      await expectReadiness(t, 'database');

      const calls: [string, () => Promise<RawResponse>][] = [
        ['upload', () => upload(t, randomBytes(50_000))],
        ['list', () => get(t, BASE)],
        ['list (other base)', () => get(t, '/v1/openai/files?limit=5&order=asc')],
        ['retrieve', () => get(t, `${BASE}/${seeded.id}`)],
        ['content', () => get(t, `${BASE}/${seeded.id}/content`)],
        ['delete', () => del(t, `${BASE}/${seeded.id}`)],
      ];
      for (const [name, call] of calls) {
        const { value, ms } = await timed(call);
        expect({ name, status: value.status }).toEqual({ name, status: 503 });
        expectUnavailable(value);
        expect({ name, fast: ms < FAST_MS, ms }).toEqual({ name, fast: true, ms });
      }
      // Nothing in storage, no row, usage unchanged (read straight from the real servers).
      expect(snapshot(await residueOf(t))).toEqual(before);

      await pg.set('up');
      await expectReadiness(t, null);
      const list = await get(t, BASE);
      expect(list.status).toBe(200);
      expect(list.json.data.map((f: { id: string }) => f.id)).toEqual([seeded.id]);
      const accepted = await upload(t, randomBytes(50_000));
      expect(accepted.status).toBe(200);
      expect((await del(t, `${BASE}/${accepted.json.id}`)).status).toBe(200);
      expect((await del(t, `${BASE}/${seeded.id}`)).status).toBe(200);
      expect(snapshot(await residueOf(t))).toEqual({ ...before, keys: [], rows: [], usage: { alice: 0 } });
    });

    it('removes the bytes of an upload whose commit finds PostgreSQL gone (503), and one reconcile removes its pending row once PostgreSQL is back', async () => {
      const before = snapshot(await residueOf(t));
      const stream = streamingUpload(t);
      await stream.send(2 * MiB);
      await eventually(
        () => residueOf(t),
        (r) => r.rows.some((row) => row.state === 'pending'),
        10_000,
      );
      await pg.set('down');
      await stream.send(1 * MiB);
      const answered = await timed(async () => {
        stream.finish();
        return stream.outcome;
      });
      const res = answered.value as { status: number; json: any; headers: http.IncomingHttpHeaders };
      expect(res.status).toBe(503);
      expectUnavailable({ ...res, body: Buffer.alloc(0) });
      expect(answered.ms).toBeLessThan(FAST_MS);

      // Its bytes are gone from storage; the pending row could not be removed (PostgreSQL is down).
      const during = await residueOf(t);
      expect({ keys: during.keys, openUploads: during.openUploads, usage: during.usage }).toEqual({
        keys: before.keys,
        openUploads: before.openUploads,
        usage: before.usage,
      });

      await pg.set('up');
      const left = (await residueOf(t)).rows.filter((row) => row.state === 'pending');
      if (left.length > 0) expect(await reconcileOnce()).toMatchObject({ ran: true, stalePending: left.length, failed: 0 });
      expect(snapshot(await residueOf(t))).toEqual(before);
    });
  });
});

describe('outages: S3 or PostgreSQL accepting connections but never answering (hang), with short timeouts', () => {
  let s3: FaultProxy;
  let pg: FaultProxy;
  let t: TestApp;
  /** One attempt's timeout (1 s) × the S3 SDK's 3 attempts, plus backoff and slack; PostgreSQL: 1 s connect timeout. */
  const BOUND_MS = 8_000;

  const ctx = proxiedApp({
    S3_CONNECT_TIMEOUT_MS: '1000',
    S3_REQUEST_TIMEOUT_MS: '1000',
    DATABASE_CONNECT_TIMEOUT_MS: '1000',
    DATABASE_STATEMENT_TIMEOUT_MS: '1000',
  });
  beforeAll(() => ({ s3, pg, t } = ctx));

  it('S3 silent: fails uploads and downloads with 503 within a bounded time instead of hanging, and works again once S3 answers', async () => {
    const data = randomBytes(20_000);
    const seeded = await upload(t, data);
    expect(seeded.status).toBe(200);
    const before = snapshot(await residueOf(t));

    await s3.set('hang');
    const [up, down, ready] = await Promise.all([
      timed(() => upload(t, randomBytes(20_000))),
      timed(() => get(t, `${BASE}/${seeded.json.id}/content`)),
      timed(() => rawRequest(t.origin, { method: 'GET', path: '/readyz', chunks: [] })),
    ]);
    expectUnavailable(up.value);
    expectUnavailable(down.value);
    expect(ready.value.status).toBe(503);
    expect(ready.value.json.checks).toEqual({ database: { status: 'ok' }, storage: { status: 'error', error: expect.any(String) } });
    for (const { ms } of [up, down, ready]) expect(ms).toBeLessThan(BOUND_MS);
    expect((await rawRequest(t.origin, { method: 'GET', path: '/healthz', chunks: [] })).status).toBe(200);
    expect(snapshot(await residueOf(t))).toEqual(before);

    await s3.set('up');
    const whole = await get(t, `${BASE}/${seeded.json.id}/content`);
    expect(whole.status).toBe(200);
    expect(sha256(whole.body)).toBe(sha256(data));
    const again = await upload(t, randomBytes(1000));
    expect(again.status).toBe(200);
    await del(t, `${BASE}/${again.json.id}`);
    await del(t, `${BASE}/${seeded.json.id}`);
  });

  it('PostgreSQL silent: answers list, retrieve, upload and delete 503 within a bounded time, stores nothing, and recovers', async () => {
    const data = randomBytes(5_000);
    const seeded = await upload(t, data);
    expect(seeded.status).toBe(200);
    const before = snapshot(await residueOf(t));

    await pg.set('hang');
    const calls = await Promise.all([
      timed(() => get(t, BASE)),
      timed(() => get(t, `${BASE}/${seeded.json.id}`)),
      timed(() => upload(t, randomBytes(5_000))),
      timed(() => del(t, `${BASE}/${seeded.json.id}`)),
      timed(() => rawRequest(t.origin, { method: 'GET', path: '/readyz', chunks: [] })),
    ]);
    const ready = calls.pop()!;
    for (const { value } of calls) expectUnavailable(value);
    expect(ready.value.status).toBe(503);
    expect(ready.value.json.checks).toEqual({ database: { status: 'error', error: expect.any(String) }, storage: { status: 'ok' } });
    for (const { ms } of [...calls, ready]) expect(ms).toBeLessThan(BOUND_MS);
    expect(snapshot(await residueOf(t))).toEqual(before);

    await pg.set('up');
    const list = await get(t, BASE);
    expect(list.status).toBe(200);
    expect(list.json.data.map((f: { id: string }) => f.id)).toEqual([seeded.json.id]);
    expect((await del(t, `${BASE}/${seeded.json.id}`)).status).toBe(200);
  });
});
