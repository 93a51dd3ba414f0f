import { createCipheriv, createHash, randomInt } from 'node:crypto';
import { request } from 'node:http';
import { Client } from 'pg';
import { fileIdFromUuid } from '../../src/files/file-id';
import {
  createTestBucket,
  createTestDatabase,
  listKeys,
  listMultipartUploads,
  type TestBucket,
  type TestDatabase,
} from '../support/backends';
import { runAudit, startServiceProcess, type ServiceProcess } from '../support/service-process';
import { inBatches } from '../support/batches';

/*
 * "Never lose a byte, never cross an owner": the built service, on S3, is SIGKILLed at a random
 * moment while uploads (some mid-multipart) and deletes are in flight. After a restart and one
 * `audit --repair`, every answer the service gave before dying must still hold: a file reported
 * created is intact and charged to its owner, a file reported deleted is gone, usage was exact
 * without repair, and nothing is left half-done in PostgreSQL or the bucket.
 *
 * Two lanes (each its own database, bucket and service) run side by side, so one lane's waiting
 * (the stale window, process start-up) overlaps the other's work. Each trial's plan (sizes, order,
 * kill moment, contents) comes from the lane's seeded PRNG: CRASH_SEED=<n> replays the plans
 * (timing still varies); CRASH_ROUNDS=<n> sets the rounds (trials = 2 × rounds).
 */

const SEED = Number(process.env.CRASH_SEED ?? randomInt(2 ** 31));
const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 10);
const LANES = 2;
const MiB = 1024 * 1024;
const STALE_SECONDS = 1;
/**
 * From the kill to the repair: the stale window, plus 1 s because Swift rounds object and
 * multipart-upload timestamps up to the next whole second (an upload begun just before the kill
 * may look up to 1 s younger than it is), plus margin.
 */
const SETTLE_MS = STALE_SECONDS * 1000 + 1_100;

const OWNERS = {
  'crash-a': 'sk-crash-owner-a-000001',
  'crash-b': 'sk-crash-owner-b-000002',
  'crash-c': 'sk-crash-owner-c-000003',
} as const;
type Owner = keyof typeof OWNERS;
const OWNER_NAMES = Object.keys(OWNERS) as Owner[];

/** mulberry32: a small seeded PRNG, so a failing plan can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Answer {
  status: number;
  body: any;
}

/**
 * A `POST /v1/files` with a chunked body (no Content-Length), file part first unless `fieldsFirst`,
 * written in 64 KiB pieces honouring back-pressure. Resolves with the answer, or null when the
 * connection died before a complete answer arrived.
 */
function upload(
  origin: string,
  owner: Owner,
  filename: string,
  data: Buffer,
  options: { fieldsFirst: boolean; expiresAfter?: number; onSent?: (fileBytes: number) => void },
): Promise<Answer | null> {
  const { fieldsFirst, expiresAfter, onSent } = options;
  const boundary = `crash${randomInt(2 ** 40)}`;
  const field = (name: string, value: string) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  const fields =
    field('purpose', 'batch') +
    (expiresAfter ? field('expires_after[anchor]', 'created_at') + field('expires_after[seconds]', String(expiresAfter)) : '');
  const fileHead =
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\n` +
    'Content-Type: application/octet-stream\r\n\r\n';
  return new Promise((resolve) => {
    const req = request(`${origin}/v1/files`, {
      method: 'POST',
      agent: false,
      headers: {
        authorization: `Bearer ${OWNERS[owner]}`,
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'transfer-encoding': 'chunked',
      },
    });
    let settled = false;
    const settle = (answer: Answer | null) => {
      if (!settled) resolve(answer);
      settled = true;
    };
    req.on('error', () => settle(null));
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('error', () => settle(null));
      res.on('aborted', () => settle(null));
      res.on('end', () => {
        try {
          settle({ status: res.statusCode ?? 0, body: JSON.parse(text) });
        } catch {
          settle(null);
        }
      });
    });
    void (async () => {
      const write = async (chunk: string | Buffer) => {
        if (!req.write(chunk)) await new Promise<void>((r) => req.once('drain', () => r()));
      };
      try {
        await write(fieldsFirst ? fields + fileHead : fileHead);
        for (let at = 0; at < data.length && !req.destroyed; at += 64 * 1024) {
          await write(data.subarray(at, at + 64 * 1024));
          onSent?.(Math.min(at + 64 * 1024, data.length));
        }
        await write(fieldsFirst ? `\r\n--${boundary}--\r\n` : `\r\n${fields}--${boundary}--\r\n`);
        req.end();
      } catch {
        settle(null);
      }
    })();
  });
}

async function call(origin: string, owner: Owner, method: string, path: string): Promise<Answer | null> {
  try {
    const res = await fetch(`${origin}${path}`, { method, headers: { authorization: `Bearer ${OWNERS[owner]}` } });
    return { status: res.status, body: await res.json() };
  } catch {
    return null;
  }
}

/** SHA-256 of the content the service serves, or the status when it does not answer 200. */
async function download(origin: string, owner: Owner, id: string): Promise<{ status: number; sha256?: string }> {
  const res = await fetch(`${origin}/v1/files/${id}/content`, { headers: { authorization: `Bearer ${OWNERS[owner]}` } });
  const body = Buffer.from(await res.arrayBuffer());
  return res.status === 200 ? { status: 200, sha256: sha256(body) } : { status: res.status };
}

interface Attempt {
  owner: Owner;
  filename: string;
  bytes: number;
  sha256: string;
  /** created: 200 with an id; refused: any other answer; unanswered: the kill cut it off. */
  outcome?: 'created' | 'refused' | 'unanswered';
  id?: string;
}

interface LiveFile {
  owner: Owner;
  bytes: number;
  sha256: string;
}

interface Row {
  id: string;
  owner_id: string;
  state: string;
  filename: string;
  bytes: string;
  sha256: string | null;
}

const tally = {
  trials: 0,
  kills: { randomMoment: 0, midMultipart: 0, afterAnswer: 0 },
  uploadsAttempted: 0,
  reportedCreated: 0,
  refused: 0,
  killedMidFlight: 0,
  unansweredButCommitted: 0,
  deletesAttempted: 0,
  deletesReportedDone: 0,
  deletesKilledMidFlight: 0,
  unansweredDeletesThatTookEffect: 0,
  pendingRowsAtKill: 0,
  openMultipartUploadsAtKill: 0,
  deletingRowsAtKill: 0,
  /** Downloads whose SHA-256 matched what was sent (a file is checked after every later kill too). */
  intactChecks: 0,
  distinctFilesVerified: 0,
  filesLost: 0,
};

const verifiedFiles = new Set<string>();

/** One database, one bucket, one service process, and what the service told us so far. */
class Lane {
  private readonly random: () => number;
  private database!: TestDatabase;
  private bucket!: TestBucket;
  private env!: Record<string, string>;
  private db!: Client;
  private service?: ServiceProcess;
  private restarting?: Promise<unknown>;
  /** Files the service reported created (or that survived unanswered) and that are not deleted. */
  private readonly live = new Map<string, LiveFile>();
  /** Files the service reported deleted, or whose unanswered delete took effect. */
  private readonly gone = new Map<string, Owner>();
  /** Files whose delete the kill cut off: deleted or whole, to be seen after the repair. */
  private readonly maybeDeleted = new Map<string, Owner>();
  /** Every upload of every trial, by its (unique) filename. */
  private readonly attempts = new Map<string, Attempt>();

  constructor(
    readonly name: string,
    readonly seed: number,
  ) {
    this.random = prng(seed);
  }

  private between(min: number, max: number): number {
    return min + Math.floor(this.random() * (max - min + 1));
  }

  /** Content keyed by the PRNG (AES-CTR keystream: fast, and a misplaced or stale chunk changes the hash). */
  private content(bytes: number): Buffer {
    const key = Buffer.from(Array.from({ length: 16 }, () => this.between(0, 255)));
    return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(bytes));
  }

  /** Mostly small files; about a third over the 5 MiB part size, so multipart uploads are open when the kill lands. */
  private plannedSize(): number {
    const r = this.random();
    if (r < 0.45) return this.between(1024, 64 * 1024);
    if (r < 0.7) return this.between(256 * 1024, 4 * MiB);
    return this.between(5 * MiB + 512 * 1024, 12 * MiB);
  }

  async open(): Promise<void> {
    [this.database, this.bucket] = await Promise.all([createTestDatabase(), createTestBucket()]);
    this.env = {
      DATABASE_URL: this.database.url,
      ...this.bucket.env,
      API_KEYS: OWNER_NAMES.map((owner) => `${OWNERS[owner]}:${owner}`).join(','),
      S3_UPLOAD_PART_SIZE_BYTES: String(5 * MiB),
      FILES_PENDING_STALE_SECONDS: String(STALE_SECONDS),
      FILES_RECONCILE_INTERVAL_SECONDS: '0',
      FILES_EXPIRY_SWEEP_INTERVAL_SECONDS: '0',
      FILES_MAX_CONCURRENT_UPLOADS_PER_OWNER: '16',
      LOG_LEVEL: 'error',
    };
    this.db = new Client({ connectionString: this.database.url });
    await this.db.connect();
    this.service = await startServiceProcess(this.env);
    await this.warmUp('open');
  }

  /**
   * One upload and one delete through a service that just started: its first request pays for
   * connection set-up and code warm-up (over a second), and a trial against a cold service would
   * see almost every upload cut off by the kill. Recorded like any other traffic.
   */
  private async warmUp(tag: string): Promise<void> {
    const data = this.content(1024);
    const attempt: Attempt = { owner: 'crash-c', filename: `crash-${this.name}-warmup-${tag}.jsonl`, bytes: data.length, sha256: sha256(data) };
    this.attempts.set(attempt.filename, attempt);
    const created = await upload(this.service!.origin, attempt.owner, attempt.filename, data, { fieldsFirst: true });
    expect(created).toMatchObject({ status: 200, body: { bytes: data.length } });
    attempt.outcome = 'created';
    attempt.id = created!.body.id;
    const deleted = await call(this.service!.origin, attempt.owner, 'DELETE', `/v1/files/${attempt.id}`);
    expect(deleted).toEqual({ status: 200, body: { id: attempt.id, object: 'file', deleted: true } });
    this.gone.set(attempt.id!, attempt.owner);
  }

  async close(): Promise<void> {
    await this.restarting?.catch(() => undefined);
    await this.service?.kill('SIGKILL');
    await this.db?.end();
    await this.bucket?.drop();
    await this.database?.drop();
  }

  async trial(n: number): Promise<void> {
    const started = Date.now();
    const context = `lane ${this.name} (seed ${this.seed}), trial ${n}`;
    // After a failed trial the service may be down; the next trial starts from a running one.
    if (this.service?.child.exitCode !== null || this.service?.child.signalCode !== null) {
      this.service = await startServiceProcess(this.env);
      await this.warmUp(`retry${n}`);
    }
    const service = this.service!;

    // The plan: 3-6 uploads over the three owners, 0-3 deletes of earlier files, a kill moment.
    const windowMs = this.between(300, 1_800);
    const uploads: { attempt: Attempt; data: Buffer; fieldsFirst: boolean; expiresAfter?: number; delayMs: number }[] = [];
    for (let u = this.between(3, 6); u > 0; u--) {
      const bytes = this.plannedSize();
      const data = this.content(bytes);
      const owner = OWNER_NAMES[this.between(0, OWNER_NAMES.length - 1)];
      const attempt: Attempt = { owner, filename: `crash-${this.name}${n}-u${u}.jsonl`, bytes, sha256: sha256(data) };
      const expiresAfter = this.random() < 0.3 ? this.between(3600, 86_400) : undefined;
      uploads.push({ attempt, data, fieldsFirst: this.random() < 0.35, expiresAfter, delayMs: this.between(0, windowMs / 2) });
      this.attempts.set(attempt.filename, attempt);
    }
    // Keep the live set small enough to verify in full every trial: big files go first once it grows.
    const liveBytes = [...this.live.values()].reduce((sum, f) => sum + f.bytes, 0);
    const deletes = [...this.live.keys()]
      .sort((x, y) => (liveBytes > 32 * MiB ? this.live.get(y)!.bytes - this.live.get(x)!.bytes : 0))
      .filter(() => this.random() < 0.6)
      .slice(0, this.between(0, 3))
      .map((id) => ({ id, owner: this.live.get(id)!.owner, delayMs: this.between(0, windowMs) }));

    // The kill comes at a random moment; or, whatever the machine's speed, as a chosen large upload
    // is past its first 5 MiB part (a multipart upload open in the bucket); or right after the k-th answer.
    let fire!: () => void;
    const triggered = new Promise<void>((resolve) => (fire = resolve));
    const big = uploads.filter((u) => u.attempt.bytes > 5 * MiB + 512 * 1024);
    const roll = this.random();
    const trigger =
      roll < 0.45 && big.length > 0
        ? { kind: 'midMultipart' as const, upload: big[this.between(0, big.length - 1)], atByte: 0 }
        : roll < 0.7
          ? { kind: 'afterAnswer' as const, answers: this.between(1, uploads.length - 1) }
          : { kind: 'randomMoment' as const };
    if (trigger.kind === 'midMultipart') trigger.atByte = this.between(5 * MiB + 256 * 1024, trigger.upload.attempt.bytes - 64 * 1024);
    let answered = 0;
    const uploadAnswers = Promise.all(
      uploads.map(async (u) => {
        await sleep(u.delayMs);
        const onSent = trigger.kind === 'midMultipart' && trigger.upload === u ? (sent: number) => sent >= trigger.atByte && fire() : undefined;
        const answer = await upload(service.origin, u.attempt.owner, u.attempt.filename, u.data, { fieldsFirst: u.fieldsFirst, expiresAfter: u.expiresAfter, onSent });
        if (trigger.kind === 'afterAnswer' && answer !== null && ++answered === trigger.answers) fire();
        return answer;
      }),
    );
    const deleteAnswers = Promise.all(
      deletes.map(async (d) => {
        await sleep(d.delayMs);
        return call(service.origin, d.owner, 'DELETE', `/v1/files/${d.id}`);
      }),
    );
    await Promise.race([triggered, sleep(trigger.kind === 'randomMoment' ? windowMs : 6_000)]);
    await service.kill('SIGKILL');
    tally.kills[trigger.kind] += 1;
    const how =
      trigger.kind === 'midMultipart'
        ? `${(trigger.atByte / MiB).toFixed(1)} MiB into ${trigger.upload.attempt.filename}`
        : trigger.kind === 'afterAnswer'
          ? `after answer ${trigger.answers}`
          : `after ${windowMs} ms`;
    const killedAt = Date.now();
    // Kept on the lane at once, so it is stopped at the end even if a check below fails first.
    const restarted = (this.restarting = startServiceProcess(this.env).then((s) => (this.service = s)));
    restarted.catch(() => undefined); // awaited below, where a failure is reported

    // Record what the service said before it died.
    tally.trials += 1;
    (await uploadAnswers).forEach((answer, i) => {
      const attempt = uploads[i].attempt;
      tally.uploadsAttempted += 1;
      if (answer === null) {
        attempt.outcome = 'unanswered';
        tally.killedMidFlight += 1;
      } else if (answer.status === 200 && typeof answer.body?.id === 'string') {
        attempt.outcome = 'created';
        attempt.id = answer.body.id;
        tally.reportedCreated += 1;
        expect({ context, answer: answer.body }).toMatchObject({ context, answer: { bytes: attempt.bytes, filename: attempt.filename, purpose: 'batch' } });
        this.live.set(answer.body.id, { owner: attempt.owner, bytes: attempt.bytes, sha256: attempt.sha256 });
      } else {
        attempt.outcome = 'refused';
        tally.refused += 1;
      }
    });
    (await deleteAnswers).forEach((answer, i) => {
      const { id, owner } = deletes[i];
      tally.deletesAttempted += 1;
      if (answer?.status === 200) {
        expect(answer.body).toEqual({ id, object: 'file', deleted: true });
        tally.deletesReportedDone += 1;
        this.live.delete(id);
        this.gone.set(id, owner);
      } else {
        // Nothing but the kill may stop the delete of a file its owner holds.
        expect({ context, id, answer }).toEqual({ context, id, answer: null });
        tally.deletesKilledMidFlight += 1;
        this.maybeDeleted.set(id, owner);
      }
    });
    await this.recordResidueAtKill();

    // The restart (and its warm-up) overlaps the stale window; then one repair run.
    await restarted;
    await this.warmUp(String(n));
    await sleep(killedAt + SETTLE_MS - Date.now());
    const audit = await runAudit(this.env, ['--repair']);
    await this.verify(context, audit);
    console.log(`${context}: killed ${how}; ${this.live.size} live, ${this.gone.size} deleted; ${Date.now() - started} ms`);
  }

  /** What a kill left behind, for the tally: proof the reconcile had real work to do. */
  private async recordResidueAtKill(): Promise<void> {
    const { rows } = await this.db.query<{ state: string; n: string }>('SELECT state::text, count(*) AS n FROM files GROUP BY state');
    const count = (state: string) => Number(rows.find((r) => r.state === state)?.n ?? 0);
    tally.pendingRowsAtKill += count('pending');
    tally.deletingRowsAtKill += count('deleting');
    tally.openMultipartUploadsAtKill += (await listMultipartUploads(this.bucket.client, this.bucket.settings.bucket)).length;
  }

  private async verify(context: string, audit: { code: number; report: any; output: string }): Promise<void> {
    const { client, settings } = this.bucket;
    const origin = this.service!.origin;
    expect({ context, code: audit.code, output: audit.code === 0 ? '' : audit.output }).toEqual({ context, code: 0, output: '' });
    const { before, repaired, after } = audit.report;
    // Never lose a byte; usage was exact on its own: the repair had nothing to fix there.
    expect({ context, lost: before.lostObjects, mismatched: before.sizeMismatches, drift: before.usageDrift, usageRepaired: repaired.usage }).toEqual({
      context,
      lost: 0,
      mismatched: 0,
      drift: [],
      usageRepaired: [],
    });
    expect({ context, after }).toMatchObject({
      context,
      after: { stalePending: 0, abortedUploads: 0, orphanObjects: 0, lostObjects: 0, sizeMismatches: 0, usageDrift: [], failed: 0 },
    });

    // Nothing half-done: only ready rows, no open multipart upload, objects == ready rows.
    const { rows } = await this.db.query<Row>('SELECT id::text, owner_id, state::text, filename, bytes::text, sha256 FROM files ORDER BY id');
    expect({ context, notReady: rows.filter((r) => r.state !== 'ready').map((r) => `${r.state} ${r.filename}`) }).toEqual({ context, notReady: [] });
    expect({ context, openUploads: await listMultipartUploads(client, settings.bucket) }).toEqual({ context, openUploads: [] });
    const readyKeys = rows.map((r) => `files/${fileIdFromUuid(r.id).publicId}`).sort();
    expect({ context, keys: (await listKeys(client, settings.bucket)).sort() }).toEqual({ context, keys: readyKeys });

    // Usage is exactly the sum of each owner's ready files.
    const { rows: usage } = await this.db.query<{ owner_id: string; used: string; actual: string }>(
      `SELECT o.owner_id, COALESCE(u.used_bytes, 0)::text AS used,
              COALESCE((SELECT SUM(bytes) FROM files f WHERE f.owner_id = o.owner_id AND f.state = 'ready'), 0)::text AS actual
       FROM (SELECT owner_id FROM owner_usage UNION SELECT owner_id FROM files) o
       LEFT JOIN owner_usage u ON u.owner_id = o.owner_id`,
    );
    for (const u of usage) expect({ context, owner: u.owner_id, used: u.used }).toEqual({ context, owner: u.owner_id, used: u.actual });

    // Every ready row is one of our uploads, of the owner who sent it, with what was sent. An upload
    // whose answer was lost may have been committed (it then counts as live); a refused one may not.
    const rowById = new Map(rows.map((r) => [fileIdFromUuid(r.id).publicId, r]));
    for (const [id, row] of rowById) {
      const attempt = this.attempts.get(row.filename);
      expect({ context, id, filename: row.filename, known: attempt !== undefined }).toEqual({ context, id, filename: row.filename, known: true });
      expect({ id, owner: row.owner_id, bytes: Number(row.bytes), sha256: row.sha256, outcome: attempt!.outcome }).toEqual({
        id,
        owner: attempt!.owner,
        bytes: attempt!.bytes,
        sha256: attempt!.sha256,
        outcome: attempt!.outcome === 'refused' ? 'never stored' : attempt!.outcome,
      });
      if (attempt!.outcome === 'created') expect(attempt!.id).toBe(id);
      if (attempt!.outcome === 'unanswered' && !this.live.has(id) && !this.gone.has(id) && !this.maybeDeleted.has(id)) {
        tally.unansweredButCommitted += 1;
        this.live.set(id, { owner: attempt!.owner, bytes: attempt!.bytes, sha256: attempt!.sha256 });
      }
    }
    // A delete the kill cut off either took effect or left the file whole (checked below with the rest).
    for (const [id, owner] of this.maybeDeleted) {
      if (!rowById.has(id)) {
        tally.unansweredDeletesThatTookEffect += 1;
        this.live.delete(id);
        this.gone.set(id, owner);
      }
      this.maybeDeleted.delete(id);
    }

    // Reported created and not deleted: present, intact, served to its owner and to no other.
    const lost: string[] = [];
    await inBatches([...this.live.entries()], 4, async ([id, file]) => {
      const served = await download(origin, file.owner, id);
      if (!rowById.has(id) || served.sha256 !== file.sha256) lost.push(`${id} (${file.owner}): row ${rowById.has(id)}, ${JSON.stringify(served)}`);
      else {
        tally.intactChecks += 1;
        verifiedFiles.add(id);
        tally.distinctFilesVerified = verifiedFiles.size;
      }
      const stranger = OWNER_NAMES.find((o) => o !== file.owner)!;
      expect({ id, stranger: (await call(origin, stranger, 'GET', `/v1/files/${id}`))?.status }).toEqual({ id, stranger: 404 });
    });
    tally.filesLost += lost.length;
    expect({ context, lost }).toEqual({ context, lost: [] });

    // Reported deleted: gone for good, metadata and content.
    await inBatches([...this.gone.entries()], 8, async ([id, owner]) => {
      const [meta, bytes] = await Promise.all([call(origin, owner, 'GET', `/v1/files/${id}`), download(origin, owner, id)]);
      expect({ context, id, meta: meta?.status, content: bytes.status }).toEqual({ context, id, meta: 404, content: 404 });
    });
  }
}

describe('crash safety: SIGKILL mid-traffic, restart, one reconcile (S3)', () => {
  const lanes = Array.from({ length: LANES }, (_, i) => new Lane(String.fromCharCode(97 + i), (SEED + i * 0x9e3779b9) >>> 0));

  beforeAll(async () => {
    console.log(`crash seed: ${SEED} (replay with CRASH_SEED=${SEED}); ${ROUNDS} rounds × ${LANES} lanes`);
    await Promise.all(lanes.map((lane) => lane.open()));
  });

  afterAll(async () => {
    await Promise.all(lanes.map((lane) => lane.close()));
    console.log(`crash tally (seed ${SEED}): ${JSON.stringify(tally, null, 2)}`);
  });

  it.each(Array.from({ length: ROUNDS }, (_, i) => i + 1))('round %i: every answer given before the kill still holds, in each lane', async (round) => {
    const results = await Promise.allSettled(lanes.map((lane) => lane.trial(round)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  });
});
