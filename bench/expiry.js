'use strict';
// 6. Expiry sweep: N expired files (rows seeded in bulk with SQL, objects really stored in a fresh
// bucket) removed by the built ExpirySweeper, run after run until none is left, as the scheduled
// job would; reports files removed per second of sweeping and checks that the bucket and the
// table are empty and every owner's usage is back to 0 afterwards.
// Env: BENCH_EXPIRY_FILES (default 20000), BENCH_EXPIRY_BATCH (default: the shipped
// FILES_EXPIRY_SWEEP_BATCH_SIZE), BENCH_EXPIRY_OWNERS (default 50).
const { ListObjectsV2Command, PutObjectCommand } = require('@aws-sdk/client-s3');
const { createBucket, createDatabase, sql } = require('./lib/backends');
const { scoped } = require('./lib/cleanup');
const { num } = require('./lib/settings');
const { targetRow, log } = require('./lib/stats');

const name = 'expiry';
const title = '6. Expiry sweep';
const OBJECT_BYTES = 16;
const PUT_CONCURRENCY = 64;

async function run() {
  const dist = loadDist();
  const files = num('BENCH_EXPIRY_FILES', 20_000);
  const batchSize = num('BENCH_EXPIRY_BATCH', dist.CONFIG_DEFAULTS_BATCH);
  const owners = num('BENCH_EXPIRY_OWNERS', 50);
  const say = log(name);
  return scoped(async () => {
    const database = await createDatabase(name);
    const bucket = await createBucket(name);

    let t0 = performance.now();
    const uuids = await seedExpired(database.url, files, owners);
    say(`seeded ${files} expired rows for ${owners} owners in ${secs(t0)} s`);
    t0 = performance.now();
    await putObjects(bucket, uuids.map((u) => dist.storageKeyFor(dist.fileIdFromUuid(u).publicId)));
    say(`stored ${files} objects of ${OBJECT_BYTES} bytes in ${secs(t0)} s`);
    if ((await countObjects(bucket)) !== files) throw new Error('not every object reached the bucket');

    const { sweeper, close } = buildSweeper(dist, database.url, bucket, batchSize);
    try {
      const runs = [];
      let removed = 0;
      let failed = 0;
      let sweeping = 0;
      for (let left = files; left > 0; ) {
        const started = performance.now();
        const report = await sweeper.sweep();
        const ms = performance.now() - started;
        sweeping += ms;
        if (!report.ran) throw new Error('the sweep lock is held by someone else');
        runs.push({ ...report, ms });
        removed += report.purged;
        failed += report.failed;
        const before = left;
        left = Number((await sql(database.url, 'SELECT count(*) AS n FROM files')).rows[0].n);
        say(`run ${runs.length}: expired ${report.expired}, purged ${report.purged}, failed ${report.failed} in ${(ms / 1000).toFixed(2)} s; ${left} rows left`);
        if (left === before) throw new Error(`a sweep made no progress (${left} rows left, ${failed} failures)`);
      }
      const leftObjects = await countObjects(bucket);
      const usage = (await sql(database.url, 'SELECT COALESCE(SUM(used_bytes), 0)::text AS used FROM owner_usage')).rows[0].used;
      if (leftObjects !== 0 || usage !== '0' || removed !== files) {
        throw new Error(`sweep left ${leftObjects} objects, usage ${usage}, removed ${removed} of ${files}`);
      }
      const rate = files / (sweeping / 1000);
      say(`${files} files in ${(sweeping / 1000).toFixed(2)} s over ${runs.length} runs (batch ${batchSize}): ${rate.toFixed(0)} files/s`);
      return {
        rows: [
          { metric: `expired files removed (bytes + rows), batch size ${batchSize}`, value: removed, unit: 'files' },
          { metric: `sweep time, ${runs.length} run(s)`, value: Number((sweeping / 1000).toFixed(2)), unit: 's' },
          targetRow('expiry sweep rate', rate, 'files/s', { atLeast: 1000 }),
          { metric: 'left in bucket / table / usage after the sweep', value: leftObjects + Number(usage), unit: '' },
        ],
        details: { files, batchSize, owners, runs },
      };
    } finally {
      await close();
    }
  });
}

/** The built classes the benchmark needs (dist/ must exist: `npm run build`). */
function loadDist() {
  const req = (p) => {
    try {
      return require(`../dist/${p}`);
    } catch (error) {
      throw new Error(`dist/${p} could not be loaded (${error.message}): run \`npm run build\` first`);
    }
  };
  return {
    CONFIG_DEFAULTS_BATCH: Number(req('config/app-config').CONFIG_DEFAULTS.FILES_EXPIRY_SWEEP_BATCH_SIZE),
    ExpirySweeper: req('files/expiry/expiry.sweeper').ExpirySweeper,
    FilesRepository: req('files/files.repository').FilesRepository,
    FilesDatabase: req('database/files-database').FilesDatabase,
    S3FileStorage: req('files/storage/s3-file-storage').S3FileStorage,
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
  await sql(
    url,
    `INSERT INTO owner_usage (owner_id, used_bytes)
     SELECT owner_id, SUM(bytes) FROM files WHERE state = 'ready' GROUP BY owner_id`,
  );
  await sql(url, 'ANALYZE files');
  return (await sql(url, 'SELECT id::text AS id FROM files')).rows.map((r) => r.id);
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

async function countObjects(bucket) {
  let count = 0;
  let token;
  do {
    const page = await bucket.client.send(new ListObjectsV2Command({ Bucket: bucket.bucket, ContinuationToken: token }));
    count += page.KeyCount ?? (page.Contents ?? []).length;
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return count;
}

/**
 * The sweeper as FilesModule builds it, outside Nest (as test/integration/expiry.sweeper.spec.ts
 * does): the service's own repository, S3 adapter and pool settings.
 */
function buildSweeper(dist, url, bucket, batchSize) {
  const { SchedulerRegistry } = require('@nestjs/schedule');
  const db = new dist.FilesDatabase({ url, poolMax: 10, connectTimeoutMs: 5000, statementTimeoutMs: 15_000 });
  const s = bucket.env;
  const storage = new dist.S3FileStorage({
    bucket: s.S3_BUCKET,
    region: s.S3_REGION,
    endpoint: s.S3_ENDPOINT,
    forcePathStyle: true,
    accessKeyId: s.S3_ACCESS_KEY_ID,
    secretAccessKey: s.S3_SECRET_ACCESS_KEY,
    connectTimeoutMs: 5000,
    requestTimeoutMs: 30_000,
  });
  const options = {
    expiry: { sweepIntervalSeconds: 0, batchSize },
    reconcile: { intervalSeconds: 0, staleAfterSeconds: 120 },
  };
  const sweeper = new dist.ExpirySweeper(
    new dist.FilesRepository(db),
    storage,
    db,
    new dist.SystemClock(),
    options,
    new SchedulerRegistry(),
    new dist.FilesMetrics(),
    new dist.FilesEvents(),
    new dist.FilesInstance('files'),
  );
  return {
    sweeper,
    close: async () => {
      storage.close();
      await db.close();
    },
  };
}

function secs(since) {
  return ((performance.now() - since) / 1000).toFixed(1);
}

module.exports = { name, title, run };

if (require.main === module) {
  run()
    .then(({ rows }) => {
      for (const r of rows) {
        const grade = typeof r.pass === 'boolean' ? (r.pass ? '  PASS' : '  MISS') : '';
        console.log(`${r.metric}: ${r.value} ${r.unit}${r.target ? `  (target ${r.target})` : ''}${grade}`);
      }
    })
    .catch((error) => {
      console.error(error);
      process.exit(1);
    });
}
