import { randomBytes, randomInt } from 'node:crypto';
import * as http from 'node:http';
import { KEYS, startTestApp, type TestApp } from '../support/app';
import { eventually, residueOf, withDatabase } from '../support/e2e/residue';
import { multipart, rawRequest, type RawResponse } from '../support/http/multipart';

/**
 * The owner quota under concurrent uploads, over HTTP against the service on S3: the check is the
 * conditional UPDATE in the commit transaction, so however many uploads race, an owner is never
 * charged past the quota, every refusal is a real one, and a refused upload leaves nothing.
 * Also the per-owner and per-instance caps on uploads in progress (429 + Retry-After).
 */

const KiB = 1024;
const QUOTA = 1024 * KiB;
const UPLOADS_PER_OWNER = 32;
const BASE = '/v1/files';

interface Outcome {
  status: number;
  json: any;
  headers: http.IncomingHttpHeaders;
}

/**
 * A `POST /v1/files` sent chunked in two steps: `start` sends the fields, the file part's head and
 * all but the last byte of `data` (the service has then begun storing it), `finish` the rest.
 */
function twoStepUpload(t: TestApp, apiKey: string, data: Buffer) {
  const boundary = `race-${randomBytes(8).toString('hex')}`;
  let settle!: (o: Outcome | { error: Error }) => void;
  const outcome = new Promise<Outcome | { error: Error }>((resolve) => (settle = resolve));
  const req = http.request(`${t.origin}${BASE}`, {
    method: 'POST',
    agent: false,
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'transfer-encoding': 'chunked' },
  });
  req.on('error', (error) => settle({ error }));
  req.on('response', (res) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let json: unknown = text;
      try {
        json = JSON.parse(text);
      } catch {
        // not JSON: kept as text for the assertion message
      }
      settle({ status: res.statusCode ?? 0, json, headers: res.headers });
    });
  });
  return {
    start(): void {
      req.write(
        `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n` +
          `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="race.jsonl"\r\n` +
          'Content-Type: application/octet-stream\r\n\r\n',
      );
      req.write(data.subarray(0, data.length - 1));
    },
    finish(): void {
      req.end(Buffer.concat([data.subarray(data.length - 1), Buffer.from(`\r\n--${boundary}--\r\n`)]));
    },
    abort(): void {
      req.destroy();
    },
    outcome,
  };
}

function simpleUpload(t: TestApp, apiKey: string, data: Buffer): Promise<RawResponse> {
  const form = multipart([
    { name: 'purpose', value: 'batch' },
    { name: 'file', filename: 'one.jsonl', data },
  ]);
  return rawRequest(t.origin, {
    method: 'POST',
    path: BASE,
    headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': form.contentType },
    chunks: [form.body],
  });
}

async function rowsByState(t: TestApp): Promise<Record<string, number>> {
  return withDatabase(t, async (db) =>
    Object.fromEntries(
      (await db.query<{ state: string; n: string }>(`SELECT state::text, count(*) AS n FROM files GROUP BY state`)).rows.map((r) => [
        r.state,
        Number(r.n),
      ]),
    ),
  );
}

describe('owner quota under concurrent uploads (HTTP, S3)', () => {
  let t: TestApp;
  const owners = [
    { name: 'alice', key: KEYS.alice },
    { name: 'bob', key: KEYS.bob },
  ];

  beforeAll(async () => {
    t = await startTestApp({
      storage: 's3',
      env: {
        FILES_QUOTA_BYTES_PER_OWNER: String(QUOTA),
        // High enough that the 429 caps never interfere with the race.
        FILES_MAX_CONCURRENT_UPLOADS_PER_OWNER: String(2 * UPLOADS_PER_OWNER),
        FILES_MAX_CONCURRENT_UPLOADS: String(4 * UPLOADS_PER_OWNER),
        DATABASE_POOL_MAX: '20',
      },
    });
  });
  afterAll(async () => t?.close());

  const ROUNDS = [
    // Every upload is held until all of them are being stored: all pass the early quota look
    // (usage 0 then), so only the commit transaction can stop them.
    { name: 'all 100 KiB, held until every upload is storing', sizes: () => 100 * KiB, barrier: true },
    { name: 'sizes 40..200 KiB, held until every upload is storing', sizes: () => randomInt(40 * KiB, 200 * KiB), barrier: true },
    { name: 'sizes 40..200 KiB, sent at once', sizes: () => randomInt(40 * KiB, 200 * KiB), barrier: false },
    { name: 'all 100 KiB, sent at once', sizes: () => 100 * KiB, barrier: false },
  ];

  it.each(ROUNDS)(
    `${UPLOADS_PER_OWNER} concurrent uploads per owner (alice and bob at once) over a ${QUOTA / KiB} KiB quota, $name: never over quota, every refusal real, nothing left by refusals`,
    async ({ sizes, barrier }) => {
      const uploads = owners.flatMap((owner) =>
        Array.from({ length: UPLOADS_PER_OWNER }, () => {
          const data = randomBytes(sizes());
          return { owner, data, request: twoStepUpload(t, owner.key, data) };
        }),
      );
      for (const u of uploads) u.request.start();
      if (barrier) {
        await eventually(
          () => rowsByState(t),
          (byState) => byState.pending === uploads.length,
          20_000,
        );
      }
      for (const u of uploads) u.request.finish();
      const outcomes = await Promise.all(uploads.map((u) => u.request.outcome));

      const residue = await residueOf(t);
      const acceptedIds: string[] = [];
      for (const owner of owners) {
        const mine = uploads.map((u, i) => ({ ...u, outcome: outcomes[i] as Outcome })).filter((u) => u.owner === owner);
        const accepted = mine.filter((u) => u.outcome.status === 200);
        const refused = mine.filter((u) => u.outcome.status !== 200);
        for (const u of refused) {
          expect({ status: u.outcome.status, body: u.outcome.json }).toEqual({
            status: 400,
            body: { error: { message: expect.stringMatching(/quota/), type: 'invalid_request_error', param: 'file', code: 'quota_exceeded' } },
          });
        }
        for (const u of accepted) expect(u.outcome.json).toMatchObject({ object: 'file', bytes: u.data.length, status: 'processed' });

        const acceptedBytes = accepted.reduce((n, u) => n + u.data.length, 0);
        const usage = residue.usage[owner.name] ?? 0;
        const readyRows = residue.rows.filter((r) => r.owner_id === owner.name);
        const readySum = await withDatabase(t, async (db) =>
          Number((await db.query(`SELECT COALESCE(SUM(bytes), 0) AS s FROM files WHERE owner_id = $1 AND state = 'ready'`, [owner.name])).rows[0].s),
        );
        // Never over quota, and the ledger agrees with the files and with what clients were told.
        expect(acceptedBytes).toBeLessThanOrEqual(QUOTA);
        expect({ usage, readySum, readyRows: readyRows.length }).toEqual({ usage: acceptedBytes, readySum: acceptedBytes, readyRows: accepted.length });
        expect(readyRows.every((r) => r.state === 'ready')).toBe(true);
        // Every refusal was real: at its moment the file did not fit, and usage only grew since.
        for (const u of refused) expect(u.data.length).toBeGreaterThan(QUOTA - usage);
        // Some uploads were refused, or the race proved nothing.
        expect(refused.length).toBeGreaterThan(0);
        if (new Set(mine.map((u) => u.data.length)).size === 1) {
          expect(accepted.length).toBe(Math.floor(QUOTA / mine[0].data.length));
        }

        // What the owner lists is exactly what was accepted.
        const list = await rawRequest(t.origin, { method: 'GET', path: BASE, headers: { Authorization: `Bearer ${owner.key}` }, chunks: [] });
        expect(list.json.data.map((f: { id: string }) => f.id).sort()).toEqual(accepted.map((u) => u.outcome.json.id).sort());
        acceptedIds.push(...accepted.map((u) => u.outcome.json.id));
      }
      // Storage holds exactly the accepted files: refusals left no object and no open multipart upload.
      expect(residue.keys).toEqual(acceptedIds.map((id) => `files/${id}`).sort());
      expect(residue.openUploads).toEqual([]);
      expect(residue.rows.length).toBe(acceptedIds.length);

      // Delete everything between rounds; the quota is fully released.
      const deletions = await Promise.all(
        uploads
          .map((u, i) => ({ u, outcome: outcomes[i] as Outcome }))
          .filter(({ outcome }) => outcome.status === 200)
          .map(({ u, outcome }) =>
            rawRequest(t.origin, { method: 'DELETE', path: `${BASE}/${outcome.json.id}`, headers: { Authorization: `Bearer ${u.owner.key}` }, chunks: [] }),
          ),
      );
      expect(deletions.every((d) => d.status === 200)).toBe(true);
      const after = await residueOf(t);
      expect({ keys: after.keys, rows: after.rows, usage: after.usage, openUploads: after.openUploads }).toEqual({
        keys: [],
        rows: [],
        usage: { alice: 0, bob: 0 },
        openUploads: [],
      });
    },
  );
});

describe('caps on uploads in progress (HTTP, S3)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({
      storage: 's3',
      env: { FILES_MAX_CONCURRENT_UPLOADS_PER_OWNER: '2', FILES_MAX_CONCURRENT_UPLOADS: '3' },
    });
  });
  afterAll(async () => t?.close());

  const pendingOf = async (owner: string) => (await residueOf(t)).rows.filter((r) => r.owner_id === owner && r.state === 'pending').length;

  function expectTooMany(res: RawResponse, message: RegExp): void {
    expect({ status: res.status, body: res.json }).toEqual({
      status: 429,
      body: { error: { message: expect.stringMatching(message), type: 'invalid_request_error', param: null, code: 'too_many_uploads' } },
    });
    expect(res.headers['retry-after']).toBe('1');
  }

  /** Starts an upload that stays open (all but its last byte sent) once the service is storing it. */
  async function hold(owner: 'alice' | 'bob' | 'carol') {
    const data = randomBytes(64 * KiB);
    const upload = twoStepUpload(t, KEYS[owner], data);
    const before = await pendingOf(owner);
    upload.start();
    await eventually(
      () => pendingOf(owner),
      (n) => n === before + 1,
      10_000,
    );
    return upload;
  }

  it('answers 429 with Retry-After and an OpenAI error beyond the per-owner and the total cap, stores nothing for it, and frees each slot when its upload ends', async () => {
    const [a1, a2] = [await hold('alice'), await hold('alice')];
    const snapshot = await residueOf(t);

    // Alice is at her cap of 2: a third upload of hers is refused at once, whatever its size.
    const refused = await simpleUpload(t, KEYS.alice, randomBytes(10 * KiB));
    expectTooMany(refused, /concurrent uploads/);
    // Bob is not: his upload is being stored, which brings the instance to its total cap of 3.
    const b1 = await hold('bob');
    const refusedTotal = await simpleUpload(t, KEYS.carol, randomBytes(10 * KiB));
    expectTooMany(refusedTotal, /too many uploads/);
    // The refused requests stored nothing: only the three held uploads are in progress.
    const during = await residueOf(t);
    expect(during.rows.filter((r) => r.state === 'pending').length).toBe(3);
    expect(during.keys).toEqual(snapshot.keys);

    // Finishing one of alice's uploads frees her slot: her next upload goes through.
    a1.finish();
    expect(await a1.outcome).toMatchObject({ status: 200 });
    const next = await simpleUpload(t, KEYS.alice, randomBytes(10 * KiB));
    expect(next.status).toBe(200);

    // A client that goes away mid-upload frees its slot too (and leaves nothing).
    a2.abort();
    await eventually(
      () => pendingOf('alice'),
      (n) => n === 0,
      10_000,
    );
    // Exactly two slots again for alice, not more (no slot given back twice) and not fewer (none leaked).
    const [a3, a4] = [await hold('alice'), await hold('alice')];
    expectTooMany(await simpleUpload(t, KEYS.alice, randomBytes(1 * KiB)), /concurrent uploads/);
    for (const u of [a3, a4, b1]) u.finish();
    const results = await Promise.all([a3.outcome, a4.outcome, b1.outcome]);
    expect(results.map((r) => (r as Outcome).status)).toEqual([200, 200, 200]);

    const end = await residueOf(t);
    expect(end.rows.map((r) => r.state)).toEqual(Array(5).fill('ready'));
    expect(end.keys.length).toBe(5);
    expect(end.openUploads).toEqual([]);
  });
});
