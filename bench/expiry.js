'use strict';
// 6. Expiry sweep: N expired files (rows seeded in bulk with SQL, objects really stored in a fresh
// bucket) removed by the built ExpirySweeper, run after run until none is left, as the scheduled
// job would. Reports files removed per second of sweeping, where that time went (storage calls
// vs. SQL, timed around the sweeper's calls into its ports), and checks that the bucket and the
// table are empty and every owner's usage is 0 afterwards. For scale it also measures:
// - the S3 server alone: objects deleted per second straight from this process with DeleteObjects,
//   the keys spread over k requests side by side (k = 16 by default: the fastest we found on
//   Swift), so the sweep's rate can be read against what the server can do at all;
// - the same sweep on filesystem storage (same PostgreSQL): the service's own cost per file.
// Env: BENCH_EXPIRY_FILES (default 20000), BENCH_EXPIRY_BATCH (default: the shipped
// FILES_EXPIRY_SWEEP_BATCH_SIZE), BENCH_EXPIRY_OWNERS (default 50), BENCH_EXPIRY_DIRECT_FILES
// (default 2000; 0 skips the direct baseline), BENCH_EXPIRY_DIRECT_REQUESTS (default 16; a list
// such as 1,8,16 measures each), BENCH_EXPIRY_FS (default 1; 0 skips fs).
const { mkdtemp, mkdir, readdir, rm, writeFile } = require('node:fs/promises');
const os = require('node:os');
const path = require('node:path');
const { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand } = require('@aws-sdk/client-s3');
const { createBucket, createDatabase, sql } = require('./lib/backends');
const { defer, scoped } = require('./lib/cleanup');
const { fromDist } = require('./lib/dist');
const { num } = require('./lib/settings');
const { targetRow, log } = require('./lib/stats');

const name = 'expiry';
const title = '6. Expiry sweep';
const OBJECT_BYTES = 16;
const PUT_CONCURRENCY = 64;
/** Live files among which the sweep's SQL is EXPLAINed (the sweep must not scan them). */
const LIVE_FILES = 100_000;

async function run() {
  const dist = loadDist();
  const files = num('BENCH_EXPIRY_FILES', 20_000);
  const batchSize = num('BENCH_EXPIRY_BATCH', dist.CONFIG_DEFAULTS_BATCH);
  const owners = num('BENCH_EXPIRY_OWNERS', 50);
  const directFiles = process.env.BENCH_EXPIRY_DIRECT_FILES === '0' ? 0 : num('BENCH_EXPIRY_DIRECT_FILES', 2000);
  const withFs = process.env.BENCH_EXPIRY_FS !== '0';
  const say = log(name);
  return scoped(async () => {
    // On S3: the graded measurement.
    const database = await createDatabase(name);
    const bucket = await createBucket(name);
    let t0 = performance.now();
    const uuids = await seedExpired(database.url, files, owners);
    say(`seeded ${files} expired rows for ${owners} owners in ${secs(t0)} s`);
    t0 = performance.now();
    await putObjects(bucket, uuids.map((u) => dist.storageKeyFor(dist.fileIdFromUuid(u).publicId)));
    say(`stored ${files} objects of ${OBJECT_BYTES} bytes on S3 in ${secs(t0)} s`);
    if ((await countObjects(bucket)) !== files) throw new Error('not every object reached the bucket');
    const s3 = new dist.S3FileStorage(s3Options(bucket));
    const onS3 = await sweepAll(dist, { url: database.url, storage: s3, batchSize, files, say: (l) => say(`s3: ${l}`) });
    s3.close();
    const leftObjects = await countObjects(bucket);
    if (leftObjects !== 0) throw new Error(`the sweep left ${leftObjects} objects in the bucket`);

    const rows = [
      { metric: `expired files removed from S3 + PostgreSQL (batch size ${batchSize})`, value: onS3.removed, unit: 'files' },
      { metric: `sweep time (${onS3.runs.length} run(s))`, value: Number((onS3.ms / 1000).toFixed(2)), unit: 's' },
      targetRow('expiry sweep rate, S3 + PostgreSQL', onS3.rate, 'files/s', { atLeast: 1000 }),
      { metric: 'share of the sweep spent in storage calls (S3 deletes)', value: Number(((100 * onS3.storageMs) / onS3.ms).toFixed(1)), unit: '%' },
      { metric: 'share spent in SQL (tombstone, delete rows, stale check)', value: Number(((100 * onS3.sqlMs) / onS3.ms).toFixed(1)), unit: '%' },
    ];
    const details = { files, batchSize, owners, onS3 };

    // A build from before deleteTombstones existed (to measure the old sweeper) has no set-based delete to EXPLAIN.
    const plans = typeof dist.FilesRepository.prototype.deleteTombstones === 'function' ? await explainSweepSql(dist, database.url, batchSize) : [];
    for (const plan of plans) {
      const lines = plan.lines.map((l) => (l.length > 240 ? `${l.slice(0, 240)}…` : l));
      say(`EXPLAIN (ANALYZE, BUFFERS) of ${plan.what}, among ${LIVE_FILES} live files:\n${plan.sql}\n${lines.join('\n')}`);
      // What must be index-served: the search for expired rows (ORDER BY expires_at LIMIT n
      // FOR UPDATE SKIP LOCKED) and the lookup of the tombstones to delete.
      const served = plan.scans.some((scan) => plan.wanted.test(scan));
      rows.push({
        metric: `${plan.what} SQL (${plan.scans.join(', ')}), execution time`,
        value: Number(plan.executionMs.toFixed(1)),
        unit: 'ms',
        target: 'index-served',
        pass: served,
      });
    }
    details.plans = plans;

    if (directFiles > 0) {
      const shapes = (process.env.BENCH_EXPIRY_DIRECT_REQUESTS || '16').split(',').map(Number);
      details.direct = {};
      for (const requests of shapes) {
        const direct = await directDeleteRate(bucket, directFiles, requests);
        say(`S3 server alone: ${directFiles} objects deleted by ${requests} DeleteObjects side by side: ${direct.toFixed(0)} objects/s`);
        rows.push({ metric: `S3 server alone: DeleteObjects of ${directFiles} keys in ${requests} request(s) side by side`, value: Number(direct.toFixed(1)), unit: 'objects/s' });
        details.direct[requests] = direct;
      }
      const best = Math.max(...Object.values(details.direct));
      rows.push({ metric: 'sweep rate / S3 server alone (best)', value: Number((onS3.rate / best).toFixed(2)), unit: '×', ratio: Number((onS3.rate / best).toFixed(2)) });
    }

    if (withFs) {
      const fsDatabase = await createDatabase(`${name}-fs`);
      const root = await mkdtemp(path.join(os.tmpdir(), 'files-api-bench-expiry-'));
      defer(`directory ${root}`, () => rm(root, { recursive: true, force: true }));
      const fsUuids = await seedExpired(fsDatabase.url, files, owners);
      await writeObjects(root, fsUuids.map((u) => dist.storageKeyFor(dist.fileIdFromUuid(u).publicId)));
      const fsStorage = new dist.FsFileStorage(root);
      await fsStorage.init();
      const onFs = await sweepAll(dist, { url: fsDatabase.url, storage: fsStorage, batchSize, files, say: (l) => say(`fs: ${l}`) });
      const leftFiles = await readdir(path.join(root, 'files'));
      if (leftFiles.length !== 0) throw new Error(`the sweep left ${leftFiles.length} files on disk`);
      rows.push({ metric: 'same sweep on filesystem storage (same PostgreSQL)', value: Number(onFs.rate.toFixed(0)), unit: 'files/s' });
      details.onFs = onFs;
    }
    return { rows, details };
  });
}

/**
 * Sweeps until the table is empty, timing every sweep() and, inside it, the sweeper's calls into
 * storage and the repository. Verifies usage is 0 at the end.
 */
async function sweepAll(dist, { url, storage, batchSize, files, say }) {
  const db = new dist.FilesDatabase({ url, poolMax: 10, connectTimeoutMs: 5000, statementTimeoutMs: 15_000 });
  try {
    const repository = new dist.FilesRepository(db);
    const spent = {};
    timeCalls(storage, ['deleteMany', 'delete'], spent);
    timeCalls(repository, ['tombstoneExpired', 'deleteTombstones', 'deleteTombstone', 'findStaleTombstones'], spent);
    const { SchedulerRegistry } = require('@nestjs/schedule');
    const sweeper = new dist.ExpirySweeper(
      repository,
      storage,
      db,
      new dist.SystemClock(),
      { expiry: { sweepIntervalSeconds: 0, batchSize }, reconcile: { intervalSeconds: 0, staleAfterSeconds: 120 } },
      new SchedulerRegistry(),
      new dist.FilesMetrics(),
      new dist.FilesEvents(),
      new dist.FilesInstance('files'),
    );
    const runs = [];
    let removed = 0;
    let ms = 0;
    for (let left = files; left > 0; ) {
      const started = performance.now();
      const report = await sweeper.sweep();
      const runMs = performance.now() - started;
      ms += runMs;
      if (!report.ran) throw new Error('the sweep lock is held by someone else');
      runs.push({ ...report, ms: runMs });
      removed += report.purged;
      const before = left;
      left = Number((await sql(url, 'SELECT count(*) AS n FROM files')).rows[0].n);
      say(`run ${runs.length}: expired ${report.expired}, purged ${report.purged}, failed ${report.failed} in ${(runMs / 1000).toFixed(2)} s; ${left} rows left`);
      if (left === before) throw new Error(`a sweep made no progress (${left} rows left)`);
    }
    const usage = (await sql(url, 'SELECT COALESCE(SUM(used_bytes), 0)::text AS used FROM owner_usage')).rows[0].used;
    if (usage !== '0' || removed !== files) throw new Error(`after the sweep: usage ${usage}, removed ${removed} of ${files}`);
    // The key-by-key default deleteMany calls delete(): count the outer call only.
    const storageMs = spent.deleteMany || spent.delete || 0;
    const sqlMs = (spent.tombstoneExpired ?? 0) + (spent.deleteTombstones ?? 0) + (spent.deleteTombstone ?? 0) + (spent.findStaleTombstones ?? 0);
    const rate = files / (ms / 1000);
    say(`${files} files in ${(ms / 1000).toFixed(2)} s (batch ${batchSize}): ${rate.toFixed(0)} files/s; storage ${(storageMs / 1000).toFixed(2)} s, SQL ${(sqlMs / 1000).toFixed(2)} s`);
    return { removed, ms, rate, runs, storageMs, sqlMs, spent };
  } finally {
    await db.close();
  }
}

/**
 * EXPLAIN (ANALYZE, BUFFERS) of the two statements a sweep batch runs, captured from the pool as
 * the built repository sends them, on a table of LIVE_FILES live files and two batches of expired
 * ones: tombstoneExpired's UPDATE (its ORDER BY expires_at LIMIT n FOR UPDATE SKIP LOCKED) and
 * deleteTombstones' DELETE … = ANY. Each is EXPLAINed in a transaction that is rolled back.
 */
async function explainSweepSql(dist, url, batchSize) {
  await sql(url, `WITH s AS (SELECT i, (extract(epoch FROM now()) * 1000)::bigint - ${LIVE_FILES} + i AS ms FROM generate_series(1, ${LIVE_FILES}) AS i)
     INSERT INTO files (id, owner_id, state, purpose, filename, bytes, sha256, created_at, expires_at, heartbeat_at)
     SELECT (lpad(to_hex(ms), 12, '0') || substr(md5(random()::text || i::text), 1, 20))::uuid, 'live-owner-' || (i % 97), 'ready',
            'batch', 'live-' || i || '.jsonl', ${OBJECT_BYTES}, repeat('ab', 32), t, t + interval '30 days', t
     FROM s, LATERAL (SELECT timestamptz 'epoch' + ms * interval '1 millisecond' AS t) AS created`);
  // seedExpired charges every ready row, live ones included.
  await sql(url, 'DELETE FROM owner_usage');
  await seedExpired(url, 2 * batchSize, 10);
  await sql(url, 'VACUUM ANALYZE files');
  const db = new dist.FilesDatabase({ url, poolMax: 2, connectTimeoutMs: 5000, statementTimeoutMs: 60_000 });
  try {
    const seen = [];
    const capture = (client) => {
      if (client.captured) return client;
      client.captured = true;
      const query = client.query.bind(client);
      client.query = (config, ...rest) => {
        if (config && typeof config === 'object' && typeof config.text === 'string') seen.push({ text: config.text, values: config.values });
        return query(config, ...rest);
      };
      return client;
    };
    // Prisma runs a transaction on a client from pool.connect(); pool.query() connects with a callback.
    const connect = db.pool.connect.bind(db.pool);
    db.pool.connect = (callback) =>
      callback
        ? connect((error, client, release) => callback(error, client && capture(client), release))
        : connect().then(capture);
    const repository = new dist.FilesRepository(db);
    const taken = await repository.tombstoneExpired(batchSize, new Date());
    await repository.deleteTombstones(taken.slice(0, 1).map((t) => t.uuid));
    const update = seen.find((q) => /^\s*UPDATE files SET state = 'deleting'/.test(q.text) && /FOR UPDATE SKIP LOCKED/.test(q.text));
    const remove = seen.find((q) => /DELETE FROM files WHERE id = ANY/.test(q.text));
    if (!update || !remove) throw new Error(`sweep statements not captured (saw: ${seen.map((q) => q.text.trim().slice(0, 60)).join(' | ')})`);
    // The second batch is still expired; the first is tombstoned, so the DELETE finds real rows.
    return [
      { ...(await explain(url, 'tombstoneExpired', update.text, update.values)), wanted: /^Index Scan using files_state_expires_at_idx/ },
      { ...(await explain(url, 'deleteTombstones', remove.text, [taken.slice(1).map((t) => t.uuid)])), wanted: /^(Index|Bitmap Index)/ },
    ];
  } finally {
    await db.close();
  }
}

async function explain(url, what, text, values) {
  const { Client } = require('pg');
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query({ text: `EXPLAIN (ANALYZE, BUFFERS) ${text}`, values });
    await client.query('ROLLBACK');
    const lines = rows.map((r) => r['QUERY PLAN']);
    const scans = lines.map((l) => /(Index Only Scan|Index Scan(?: Backward)?|Bitmap Index Scan|Seq Scan) (?:using (\S+) )?on (\S+)/.exec(l)).filter(Boolean);
    const shown = (values ?? []).map((v) => (Array.isArray(v) ? `[${v.length} ids]` : v));
    return {
      what,
      sql: `${text.trim().replace(/\s+/g, ' ')}  -- $n = ${JSON.stringify(shown)}`,
      lines,
      scans: scans.map((m) => `${m[1]}${m[2] ? ` using ${m[2]}` : ''}`),
      executionMs: Number(/Execution Time: ([\d.]+) ms/.exec(lines.join('\n'))?.[1] ?? NaN),
    };
  } finally {
    await client.end();
  }
}

/** Wraps `methods` of `target` (those it has) to add their time to `spent[method]`. */
function timeCalls(target, methods, spent) {
  for (const method of methods) {
    if (typeof target[method] !== 'function') continue;
    const original = target[method].bind(target);
    target[method] = async (...args) => {
      const started = performance.now();
      try {
        return await original(...args);
      } finally {
        spent[method] = (spent[method] ?? 0) + performance.now() - started;
      }
    };
  }
}

/** The built classes the benchmark needs (`npm run build` first). */
function loadDist() {
  const req = (p) => {
    try {
      return fromDist(p);
    } catch (error) {
      throw new Error(`${p} could not be loaded from the build (${error.message}): run \`npm run build\` first`);
    }
  };
  return {
    CONFIG_DEFAULTS_BATCH: Number(req('config/app-config').CONFIG_DEFAULTS.FILES_EXPIRY_SWEEP_BATCH_SIZE),
    ExpirySweeper: req('files/expiry/expiry.sweeper').ExpirySweeper,
    FilesRepository: req('files/files.repository').FilesRepository,
    FilesDatabase: req('database/files-database').FilesDatabase,
    S3FileStorage: req('files/storage/s3-file-storage').S3FileStorage,
    FsFileStorage: req('files/storage/fs-file-storage').FsFileStorage,
    SystemClock: req('common/clock').SystemClock,
    FilesMetrics: req('files/files.metrics').FilesMetrics,
    FilesEvents: req('files/files.events').FilesEvents,
    FilesInstance: req('files/files.instance').FilesInstance,
    fileIdFromUuid: req('files/file-id').fileIdFromUuid,
    storageKeyFor: req('files/storage/storage-key').storageKeyFor,
  };
}

/**
 * `n` ready files, expired an hour ago, spread over `owners` owners, with owner_usage equal to
 * the sum of their bytes (the invariant the sweep maintains). Ids are what file-id.ts makes: a
 * 48-bit millisecond timestamp (= created_at) followed by 80 random bits.
 */
async function seedExpired(url, n, owners) {
  await sql(
    url,
    `WITH s AS (
       SELECT i, (extract(epoch FROM now()) * 1000)::bigint - 7200000 - ${n} + i AS ms
       FROM generate_series(1, ${n}) AS i)
     INSERT INTO files (id, owner_id, state, purpose, filename, bytes, sha256, created_at, expires_at, heartbeat_at)
     SELECT (lpad(to_hex(ms), 12, '0') || substr(md5(random()::text || i::text), 1, 20))::uuid,
            'expiry-owner-' || (i % ${owners}), 'ready', 'batch', 'bench-' || i || '.jsonl', ${OBJECT_BYTES},
            repeat('ab', 32), t, t + interval '1 hour', t
     FROM s, LATERAL (SELECT timestamptz 'epoch' + ms * interval '1 millisecond' AS t) AS created`,
  );
  await sql(url, `INSERT INTO owner_usage (owner_id, used_bytes) SELECT owner_id, SUM(bytes) FROM files WHERE state = 'ready' GROUP BY owner_id`);
  // What autovacuum would do shortly after a bulk load.
  await sql(url, 'ANALYZE files');
  return (await sql(url, 'SELECT id::text AS id FROM files')).rows.map((r) => r.id);
}

function s3Options(bucket) {
  const s = bucket.env;
  return {
    bucket: s.S3_BUCKET,
    region: s.S3_REGION,
    endpoint: s.S3_ENDPOINT,
    forcePathStyle: true,
    accessKeyId: s.S3_ACCESS_KEY_ID,
    secretAccessKey: s.S3_SECRET_ACCESS_KEY,
    connectTimeoutMs: 5000,
    requestTimeoutMs: 30_000,
  };
}

/** Stores every key with a few bytes, PUT_CONCURRENCY requests in flight. */
async function putObjects(bucket, keys) {
  const body = Buffer.alloc(OBJECT_BYTES, 'x');
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const Key = keys[next++];
      await bucket.client.send(new PutObjectCommand({ Bucket: bucket.bucket, Key, Body: body }));
    }
  };
  await Promise.all(Array.from({ length: PUT_CONCURRENCY }, worker));
}

async function writeObjects(root, keys) {
  await mkdir(path.join(root, 'files'), { recursive: true });
  const body = Buffer.alloc(OBJECT_BYTES, 'x');
  for (let i = 0; i < keys.length; i += 256) {
    await Promise.all(keys.slice(i, i + 256).map((key) => writeFile(path.join(root, key), body)));
  }
}

async function countObjects(bucket, prefix) {
  let count = 0;
  let token;
  do {
    const page = await bucket.client.send(new ListObjectsV2Command({ Bucket: bucket.bucket, Prefix: prefix, ContinuationToken: token }));
    count += page.KeyCount ?? (page.Contents ?? []).length;
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return count;
}

/** Objects per second the S3 server deletes when asked directly, the keys spread over `requests` DeleteObjects at once. */
async function directDeleteRate(bucket, n, requests) {
  const keys = Array.from({ length: n }, (_, i) => `direct/object-${i}`);
  await putObjects(bucket, keys);
  // At most 1000 keys per request (S3's limit), `requests` of them in flight.
  const size = Math.min(1000, Math.ceil(n / requests));
  const chunks = [];
  for (let i = 0; i < n; i += size) chunks.push(keys.slice(i, i + size));
  let errors = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: requests }, async () => {
      for (let chunk = chunks.shift(); chunk; chunk = chunks.shift()) {
        const answer = await bucket.client.send(
          new DeleteObjectsCommand({ Bucket: bucket.bucket, Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true } }),
        );
        errors += (answer.Errors ?? []).length;
      }
    }),
  );
  const ms = performance.now() - started;
  if (errors > 0 || (await countObjects(bucket, 'direct/')) !== 0) throw new Error(`direct DeleteObjects left objects (${errors} errors)`);
  return n / (ms / 1000);
}

function secs(since) {
  return ((performance.now() - since) / 1000).toFixed(1);
}

module.exports = { name, title, run };

if (require.main === module) require('./run').main([name]);
