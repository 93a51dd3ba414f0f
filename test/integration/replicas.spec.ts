import { createHash, randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { fileIdFromUuid, parseFileId } from '../../src/files/file-id';
import {
  createTestBucket,
  createTestDatabase,
  listKeys,
  listMultipartUploads,
  type TestBucket,
  type TestDatabase,
} from '../support/backends';
import { eventually } from '../support/e2e/residue';
import { runAudit, startServiceProcess, type ServiceProcess } from '../support/service-process';
import { inBatches } from '../support/batches';

/*
 * Two replicas of the built service on one database and one bucket, each running its expiry
 * sweep and its reconciler every second, while traffic goes through both: every expired file is
 * removed exactly once, nothing else is touched, and either replica serves what the other wrote.
 */

const MiB = 1024 * 1024;
const OWNERS = {
  'rep-ex': 'sk-replica-expiring-001',
  'rep-a': 'sk-replica-owner-a-0002',
  'rep-b': 'sk-replica-owner-b-0003',
} as const;
type Owner = keyof typeof OWNERS;

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pickFrom = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)];

interface Answer {
  status: number;
  body: any;
}

async function call(origin: string, owner: Owner, method: string, path: string): Promise<Answer> {
  const res = await fetch(`${origin}${path}`, { method, headers: { authorization: `Bearer ${OWNERS[owner]}` } });
  return { status: res.status, body: await res.json() };
}

async function upload(origin: string, owner: Owner, data: Buffer, filename: string): Promise<Answer> {
  const form = new FormData();
  form.append('purpose', 'batch');
  form.append('expires_after[anchor]', 'created_at');
  form.append('expires_after[seconds]', '3600');
  form.append('file', new Blob([data]), filename);
  const res = await fetch(`${origin}/v1/files`, { method: 'POST', body: form, headers: { authorization: `Bearer ${OWNERS[owner]}` } });
  return { status: res.status, body: await res.json() };
}

async function download(origin: string, owner: Owner, id: string): Promise<{ status: number; sha256?: string }> {
  const res = await fetch(`${origin}/v1/files/${id}/content`, { headers: { authorization: `Bearer ${OWNERS[owner]}` } });
  const body = Buffer.from(await res.arrayBuffer());
  return res.status === 200 ? { status: 200, sha256: sha256(body) } : { status: res.status };
}

/** Every id the owner can list, following the cursor. */
async function listAll(origin: string, owner: Owner): Promise<string[]> {
  const ids: string[] = [];
  let after = '';
  for (;;) {
    const page = await call(origin, owner, 'GET', `/v1/files?limit=50&order=asc${after}`);
    expect(page.status).toBe(200);
    ids.push(...page.body.data.map((f: { id: string }) => f.id));
    if (!page.body.has_more) return ids;
    after = `&after=${page.body.last_id}`;
  }
}

async function metrics(origin: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${origin}/metrics`)).text();
  return Object.fromEntries(
    text
      .split('\n')
      .filter((line) => line.startsWith('files_api_'))
      .map((line) => {
        const [name, value] = line.split(' ');
        return [name.replace(/^files_api_|_total$/g, ''), Number(value)];
      }),
  );
}

interface Known {
  owner: Owner;
  bytes: number;
  sha256: string;
}

describe('two replicas on one database and bucket, sweeping and reconciling concurrently (S3)', () => {
  let database: TestDatabase;
  let bucket: TestBucket;
  let env: Record<string, string>;
  let db: Client;
  let replicas: ServiceProcess[] = [];

  beforeAll(async () => {
    [database, bucket] = await Promise.all([createTestDatabase(), createTestBucket()]);
    env = {
      DATABASE_URL: database.url,
      ...bucket.env,
      API_KEYS: Object.entries(OWNERS)
        .map(([owner, key]) => `${key}:${owner}`)
        .join(','),
      S3_UPLOAD_PART_SIZE_BYTES: String(5 * MiB),
      FILES_EXPIRY_SWEEP_INTERVAL_SECONDS: '1',
      // Small batches: one sweep run takes several, and the replicas' runs interleave.
      FILES_EXPIRY_SWEEP_BATCH_SIZE: '7',
      FILES_RECONCILE_INTERVAL_SECONDS: '1',
      FILES_PENDING_STALE_SECONDS: '3',
      FILES_MAX_CONCURRENT_UPLOADS_PER_OWNER: '16',
      LOG_LEVEL: 'log',
    };
    db = new Client({ connectionString: database.url });
    await db.connect();
    // Started together, so their once-a-second jobs tick at nearly the same moments and contend
    // for the advisory locks on every tick.
    replicas = await Promise.all([startServiceProcess(env), startServiceProcess(env)]);
  });

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.kill('SIGKILL')));
    await db?.end();
    await bucket?.drop();
    await database?.drop();
  });

  it('serves through replica B a file uploaded through replica A: listed, downloaded, deleted', async () => {
    const [a, b] = replicas;
    const data = randomBytes(300 * 1024);
    const created = await upload(a.origin, 'rep-a', data, 'via-a.jsonl');
    expect(created).toMatchObject({ status: 200, body: { object: 'file', bytes: data.length, filename: 'via-a.jsonl' } });
    const id: string = created.body.id;

    expect(await listAll(b.origin, 'rep-a')).toEqual([id]);
    expect(await call(b.origin, 'rep-a', 'GET', `/v1/files/${id}`)).toMatchObject({ status: 200, body: { id, bytes: data.length } });
    expect(await download(b.origin, 'rep-a', id)).toEqual({ status: 200, sha256: sha256(data) });
    // Another owner sees nothing of it on either replica.
    for (const r of replicas) expect((await call(r.origin, 'rep-b', 'GET', `/v1/files/${id}`)).status).toBe(404);

    expect(await call(b.origin, 'rep-a', 'DELETE', `/v1/files/${id}`)).toEqual({ status: 200, body: { id, object: 'file', deleted: true } });
    for (const r of replicas) {
      expect((await call(r.origin, 'rep-a', 'GET', `/v1/files/${id}`)).status).toBe(404);
      expect((await download(r.origin, 'rep-a', id)).status).toBe(404);
      expect(await listAll(r.origin, 'rep-a')).toEqual([]);
    }
    expect(await listKeys(bucket.client, bucket.settings.bucket)).toEqual([]);
    const { rows } = await db.query(`SELECT used_bytes::int AS used FROM owner_usage WHERE owner_id = 'rep-a'`);
    expect(rows).toEqual([{ used: 0 }]);
  });

  it('removes each expired file exactly once while both replicas serve traffic; nothing else is touched', async () => {
    const live = new Map<string, Known>();
    let uploadsDone = 0;
    const uploadVia = async (origin: string, owner: Owner, bytes: number) => {
      const data = randomBytes(bytes);
      const answer = await upload(origin, owner, data, `${owner}-${uploadsDone++}.jsonl`);
      // A replica's reconciler must never take an upload in progress on the other for abandoned.
      expect({ status: answer.status, error: answer.body?.error }).toEqual({ status: 200, error: undefined });
      live.set(answer.body.id, { owner, bytes, sha256: sha256(data) });
      return answer.body.id as string;
    };

    // 48 files of the expiring owner (two of them multipart), 12 each for two others, via both replicas.
    const plan: { owner: Owner; bytes: number }[] = [
      ...Array.from({ length: 48 }, (_, i) => ({ owner: 'rep-ex' as Owner, bytes: i < 2 ? 6 * MiB : 1024 + Math.floor(Math.random() * 200 * 1024) })),
      ...Array.from({ length: 24 }, (_, i) => ({ owner: (i % 2 ? 'rep-a' : 'rep-b') as Owner, bytes: 1024 + Math.floor(Math.random() * 200 * 1024) })),
    ];
    const exIds: string[] = [];
    await inBatches(
      plan.map((p, i) => ({ ...p, i })),
      8,
      async (p) => {
        const id = await uploadVia(replicas[p.i % 2].origin, p.owner, p.bytes);
        if (p.owner === 'rep-ex') exIds[p.i] = id; // by plan position: the multipart ones are 0 and 1
      },
    );
    // The expiring owner uploads nothing more: a commit of its own would release its expired files
    // too (not the sweeper), and the count below is of what the sweepers did.
    const expired = exIds.filter((_, i) => i % 4 !== 3); // 36, both multipart ones among them
    const waves = [0, 9, 18, 27].map((at) => expired.slice(at, at + 9));
    const gone = new Map<string, Owner>();
    const expiredSoFar = new Set<string>();

    // Traffic through both replicas until told to stop: uploads, deletes, lists, reads.
    let stop = false;
    const traffic = async () => {
      while (!stop) {
        const r = pickFrom(replicas);
        const action = Math.random();
        if (action < 0.3) {
          await uploadVia(r.origin, pickFrom(['rep-a', 'rep-b'] as const), 1024 + Math.floor(Math.random() * 100 * 1024));
        } else if (action < 0.5) {
          const candidates = [...live.keys()].filter((id) => !expired.includes(id));
          if (candidates.length === 0) continue;
          const id = pickFrom(candidates);
          const owner = live.get(id)!.owner;
          live.delete(id);
          expect(await call(r.origin, owner, 'DELETE', `/v1/files/${id}`)).toEqual({ status: 200, body: { id, object: 'file', deleted: true } });
          gone.set(id, owner);
        } else if (action < 0.75) {
          const seen = new Set(expiredSoFar);
          const listed = await listAll(r.origin, 'rep-ex');
          // An expired file is gone from listings at once, before any sweeper gets to it.
          expect(listed.filter((id) => seen.has(id))).toEqual([]);
        } else {
          const readable = [...live.entries()].filter(([i]) => !expired.includes(i));
          if (readable.length === 0) continue;
          const [id, file] = pickFrom(readable);
          const answer = await call(r.origin, file.owner, 'GET', `/v1/files/${id}`);
          // It may have been deleted meanwhile by another worker; otherwise it is there.
          if (live.has(id)) expect({ id, status: answer.status }).toEqual({ id, status: 200 });
        }
      }
    };
    const workers = Promise.all([traffic(), traffic(), traffic()]);
    // A failed check in a worker stops the others; it is reported where `workers` is awaited.
    workers.catch(() => (stop = true));
    const before = await Promise.all(replicas.map((r) => metrics(r.origin)));

    // Expire the chosen files in waves while the traffic runs (legitimate setup: the services use
    // the real clock, and the shortest expiry is an hour). Irregular gaps, so that the waves fall
    // to different replicas' ticks.
    for (const wave of waves) {
      await sleep(800 + Math.floor(Math.random() * 800));
      const uuids = wave.map((id) => parseFileId(id)!.uuid);
      const { rowCount } = await db.query(`UPDATE files SET expires_at = now() - interval '1 second' WHERE id = ANY($1::uuid[]) AND state = 'ready'`, [uuids]);
      expect(rowCount).toBe(wave.length);
      for (const id of wave) {
        expiredSoFar.add(id);
        live.delete(id);
      }
      const sample = wave[0];
      for (const r of replicas) expect((await call(r.origin, 'rep-ex', 'GET', `/v1/files/${sample}`)).status).toBe(404);
    }

    // Both sweepers work the backlog off; then a little more traffic, and a quiet second.
    await eventually(
      async () => (await db.query(`SELECT count(*)::int AS n FROM files WHERE id = ANY($1::uuid[])`, [expired.map((id) => parseFileId(id)!.uuid)])).rows[0].n,
      (n) => n === 0,
      20_000,
    );
    await sleep(1_500);
    stop = true;
    await workers;
    await sleep(2_500);

    // Exactly once: the sweepers together expired (and purged) each file once, and nothing failed.
    const after = await Promise.all(replicas.map((r) => metrics(r.origin)));
    const delta = (name: string) => after.map((m, i) => m[name] - before[i][name]);
    const sum = (name: string) => delta(name).reduce((x, y) => x + y, 0);
    console.log(`replicas A, B: expired ${JSON.stringify(delta('expiry_files_expired'))}, reconcile passes ${JSON.stringify(delta('reconcile_runs'))}`);
    expect({ expired: sum('expiry_files_expired'), purged: sum('expiry_files_purged') }).toEqual({ expired: expired.length, purged: expired.length });
    for (const m of after) {
      expect(m).toMatchObject({
        expiry_failures: 0,
        reconcile_stale_pending: 0,
        reconcile_aborted_uploads: 0,
        reconcile_orphan_objects: 0,
        reconcile_lost_objects: 0,
        reconcile_size_mismatches: 0,
        reconcile_failures: 0,
      });
    }
    // Passes ran throughout; which replica won each tick's advisory lock is up to timing.
    expect(sum('reconcile_runs')).toBeGreaterThanOrEqual(3);
    for (const r of replicas) {
      const problems = r
        .output()
        .split('\n')
        .filter((line) => /"level":"(error|fatal)"|could not|will retry|sweep failed|reconcile failed|"failed":[1-9]/i.test(line));
      expect(problems).toEqual([]);
    }

    // Expired and deleted files: gone on both replicas; live files: intact on both, and listed exactly.
    const removed: [string, Owner][] = [...expired.map((id): [string, Owner] => [id, 'rep-ex']), ...gone];
    await inBatches(removed, 8, async ([id, owner]) => {
      for (const r of replicas) {
        const [meta, content] = await Promise.all([call(r.origin, owner, 'GET', `/v1/files/${id}`), download(r.origin, owner, id)]);
        expect({ id, meta: meta.status, content: content.status }).toEqual({ id, meta: 404, content: 404 });
      }
    });
    await inBatches([...live.entries()], 8, async ([id, file]) => {
      for (const r of replicas) expect({ id, served: await download(r.origin, file.owner, id) }).toEqual({ id, served: { status: 200, sha256: file.sha256 } });
    });
    for (const owner of Object.keys(OWNERS) as Owner[]) {
      const expected = [...live.entries()].filter(([, f]) => f.owner === owner).map(([id]) => id).sort();
      for (const r of replicas) expect({ owner, listed: (await listAll(r.origin, owner)).sort() }).toEqual({ owner, listed: expected });
    }

    // Usage exact; rows, objects and live files agree; nothing pending, half-deleted or half-uploaded.
    const { rows } = await db.query<{ id: string; owner_id: string; state: string; bytes: string }>(
      'SELECT id::text, owner_id, state::text, bytes::text FROM files',
    );
    expect(rows.filter((r) => r.state !== 'ready')).toEqual([]);
    const readyIds = rows.map((r) => fileIdFromUuid(r.id).publicId).sort();
    expect(readyIds).toEqual([...live.keys()].sort());
    expect((await listKeys(bucket.client, bucket.settings.bucket)).sort()).toEqual(readyIds.map((id) => `files/${id}`));
    expect(await listMultipartUploads(bucket.client, bucket.settings.bucket)).toEqual([]);
    const { rows: usage } = await db.query<{ owner_id: string; used: string }>('SELECT owner_id, used_bytes::text AS used FROM owner_usage');
    for (const owner of Object.keys(OWNERS) as Owner[]) {
      const expected = [...live.values()].filter((f) => f.owner === owner).reduce((s, f) => s + f.bytes, 0);
      expect({ owner, used: Number(usage.find((u) => u.owner_id === owner)?.used ?? 0) }).toEqual({ owner, used: expected });
    }
    // The audit while both replicas keep reconciling: it retries when one of them holds the lock.
    let audit = await runAudit(env);
    for (let attempt = 0; attempt < 20 && audit.code === 2 && /another instance is reconciling/.test(audit.output); attempt++) {
      await sleep(150);
      audit = await runAudit(env);
    }
    expect({ code: audit.code, output: audit.code === 0 ? '' : audit.output }).toEqual({ code: 0, output: '' });
  });
});
