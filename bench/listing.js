'use strict';
// 5. Listing at scale: one owner with N files (default 100,000; rows seeded in bulk with SQL,
// interleaved in id order with as many files of other owners) listed through the built service's
// real `GET /v1/files?limit=10000`: the first page vs. the page after the file 90% deep, alternating,
// median of BENCH_LISTING_REPS each (keyset pagination: the deep page should cost what the first
// does), plus a walk over every page following the cursor. Then EXPLAIN (ANALYZE, BUFFERS) of
// the very SQL Prisma sends for the deep page (captured from the pool while the built
// FilesRepository.listPage runs) and whether it is an index scan.
// Env: BENCH_LISTING_FILES (default 100000), BENCH_LISTING_OTHER_FILES (default = FILES),
// BENCH_LISTING_REPS (default 7).
const http = require('node:http');
const { sql } = require('./lib/backends');
const { scoped } = require('./lib/cleanup');
const { fromDist } = require('./lib/dist');
const { startService } = require('./lib/service');
const { num } = require('./lib/settings');
const { median, targetRow, log } = require('./lib/stats');

const name = 'listing';
const title = '5. Listing at scale';
const LIMIT = 10_000;

async function run() {
  const files = num('BENCH_LISTING_FILES', 100_000);
  const others = process.env.BENCH_LISTING_OTHER_FILES === '0' ? 0 : num('BENCH_LISTING_OTHER_FILES', files);
  const reps = num('BENCH_LISTING_REPS', 7);
  const depth = Math.floor(files * 0.9);
  const say = log(name);
  const { fileIdFromUuid } = fromDist('files/file-id');
  return scoped(async () => {
    const service = await startService(name);
    const url = service.database.url;
    let t0 = performance.now();
    await seed(url, service.owner, files, others);
    say(`seeded ${files} files of ${service.owner} and ${others} of other owners in ${secs(t0)} s`);

    // The cursor of the deep page: the id of the file `depth` places down the default (desc) order.
    const cursorRow = (await sql(url, {
      text: 'SELECT id::text AS id FROM files WHERE owner_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1',
      values: [service.owner, depth - 1],
    })).rows[0];
    const deepCursor = fileIdFromUuid(cursorRow.id).publicId;
    const firstPath = `/v1/files?limit=${LIMIT}`;
    const deepPath = `/v1/files?limit=${LIMIT}&after=${deepCursor}`;

    // Warm the service (JIT, pool, plan cache) and PostgreSQL's buffers on both pages.
    for (let i = 0; i < 2; i++) {
      await page(service, firstPath);
      await page(service, deepPath);
    }
    const first = [];
    const deep = [];
    for (let i = 0; i < reps; i++) {
      const order = i % 2 === 0 ? [[first, firstPath], [deep, deepPath]] : [[deep, deepPath], [first, firstPath]];
      for (const [into, path] of order) into.push(await page(service, path));
    }
    check(first[0], LIMIT, files > LIMIT, 'first page');
    check(deep[0], Math.min(LIMIT, files - depth), files - depth > LIMIT, 'deep page');
    const firstMs = median(first.map((p) => p.ms));
    const deepMs = median(deep.map((p) => p.ms));
    say(`first page ${firstMs.toFixed(0)} ms, ${depth} deep ${deepMs.toFixed(0)} ms (medians of ${reps}; all: ${first.map((p) => p.ms.toFixed(0))} / ${deep.map((p) => p.ms.toFixed(0))}); ${(first[0].bytes / 1e6).toFixed(2)} MB per page`);

    // Every page, following the cursor: exact and complete.
    t0 = performance.now();
    const walk = [];
    const seen = new Set();
    for (let after; ; ) {
      const p = await page(service, `/v1/files?limit=${LIMIT}${after ? `&after=${after}` : ''}`);
      walk.push(p.ms);
      for (const f of p.body.data) seen.add(f.id);
      if (!p.body.has_more) break;
      after = p.body.last_id;
    }
    if (seen.size !== files) throw new Error(`walking the pages listed ${seen.size} distinct files of ${files}`);
    say(`walked ${walk.length} pages in ${secs(t0)} s: ${walk.map((ms) => ms.toFixed(0)).join(', ')} ms`);

    const plan = await explainDeepPage(url, service.owner, deepCursor);
    say(`EXPLAIN (ANALYZE, BUFFERS) of Prisma's SQL for the deep page:\n${plan.sql}\n${plan.lines.join('\n')}`);

    return {
      rows: [
        { metric: `GET /files?limit=${LIMIT}, first page of ${files} files (median of ${reps})`, value: round(firstMs), unit: 'ms' },
        { metric: `same, page after the ${depth}th file (median of ${reps})`, value: round(deepMs), unit: 'ms' },
        { ...targetRow('deep page / first page', deepMs / firstMs, '', { atMost: 1.2, ratio: true }) },
        { metric: `all ${walk.length} pages via cursor: slowest / fastest`, value: Number((Math.max(...walk) / Math.min(...walk)).toFixed(2)), unit: '×' },
        { metric: `deep-page SQL plan: ${plan.access}`, value: plan.indexScan ? 1 : 0, unit: 'index scan (1 = yes)', target: '1', pass: plan.indexScan },
        { metric: 'deep-page SQL execution time (EXPLAIN ANALYZE)', value: plan.executionMs, unit: 'ms' },
      ],
      details: { files, others, reps, depth, first, deep, walk, plan },
    };
  });
}

/**
 * N files of `owner` and `others` files of 97 other owners, interleaved in id order (so the
 * owner's rows are spread over the whole heap, as files uploaded over time by many owners are),
 * all ready and live, with owner_usage equal to the sum of each owner's bytes. Ids as file-id.ts
 * makes them: 48-bit millisecond timestamp (= created_at) + 80 random bits.
 */
async function seed(url, owner, files, others) {
  const total = files + others;
  await sql(url, {
    text: `WITH s AS (
       SELECT i, (extract(epoch FROM now()) * 1000)::bigint - 20 * 86400000 + i * 7 AS ms,
              (i * $2::bigint) / $3 > ((i - 1) * $2::bigint) / $3 AS mine
       FROM generate_series(1, $3::int) AS i)
     INSERT INTO files (id, owner_id, state, purpose, filename, bytes, sha256, created_at, expires_at, heartbeat_at)
     SELECT (lpad(to_hex(ms), 12, '0') || substr(md5(random()::text || i::text), 1, 20))::uuid,
            CASE WHEN mine THEN $1 ELSE 'other-' || (i % 97) END, 'ready', 'batch',
            'requests-' || i || '.jsonl', 1000 + i % 1000, md5(i::text) || md5(i::text), t, t + interval '30 days', t
     FROM s, LATERAL (SELECT timestamptz 'epoch' + ms * interval '1 millisecond' AS t) AS created`,
    values: [owner, files, total],
  });
  await sql(url, `INSERT INTO owner_usage (owner_id, used_bytes) SELECT owner_id, SUM(bytes) FROM files WHERE state = 'ready' GROUP BY owner_id`);
  const mine = Number((await sql(url, { text: 'SELECT count(*) AS n FROM files WHERE owner_id = $1', values: [owner] })).rows[0].n);
  if (mine !== files) throw new Error(`seeded ${mine} files for ${owner}, wanted ${files}`);
  // What autovacuum would do shortly after a bulk load; without it the planner guesses blindly.
  await sql(url, 'VACUUM ANALYZE files');
}

/** One GET, timed to the last byte of the body; the JSON is parsed afterwards. */
function page(service, path) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    http
      .get({ host: '127.0.0.1', port: service.port, path, headers: { Authorization: `Bearer ${service.apiKey}` } }, (res) => {
        const parts = [];
        res.on('data', (c) => parts.push(c));
        res.on('end', () => {
          const ms = performance.now() - started;
          const text = Buffer.concat(parts).toString();
          if (res.statusCode !== 200) return reject(new Error(`GET ${path} answered ${res.statusCode}: ${text.slice(0, 300)}`));
          resolve({ ms, bytes: text.length, body: JSON.parse(text) });
        });
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

function check(p, count, hasMore, what) {
  if (p.body.data.length !== count || p.body.has_more !== hasMore) {
    throw new Error(`${what}: ${p.body.data.length} files, has_more ${p.body.has_more}; expected ${count}, ${hasMore}`);
  }
}

/**
 * Runs the built FilesRepository.listPage for the deep page with the pool's query() wrapped, so
 * the SQL text and parameters are exactly what Prisma sent; then EXPLAINs that statement with
 * those parameters.
 */
async function explainDeepPage(url, owner, after) {
  const { FilesDatabase } = fromDist('database/files-database');
  const { FilesRepository } = fromDist('files/files.repository');
  const db = new FilesDatabase({ url, poolMax: 2, connectTimeoutMs: 5000, statementTimeoutMs: 60_000 });
  try {
    const seen = [];
    const query = db.pool.query.bind(db.pool);
    db.pool.query = (config, ...rest) => {
      if (config && typeof config === 'object' && typeof config.text === 'string') seen.push({ text: config.text, values: config.values });
      return query(config, ...rest);
    };
    const now = new Date();
    const result = await new FilesRepository(db).listPage(owner, { limit: LIMIT, order: 'desc', after }, now);
    db.pool.query = query;
    const statement = seen.find((q) => /FROM\s+"public"\."files"/i.test(q.text) && /ORDER BY/i.test(q.text));
    if (!statement) throw new Error(`no listing SELECT captured (saw: ${seen.map((q) => q.text.slice(0, 80)).join(' | ')})`);
    if (result.files.length === 0) throw new Error('listPage returned nothing for the deep page');
    const { rows } = await db.pool.query({ text: `EXPLAIN (ANALYZE, BUFFERS) ${statement.text}`, values: statement.values });
    const lines = rows.map((r) => r['QUERY PLAN']);
    const access = lines.map((l) => /(Index Only Scan|Index Scan(?: Backward)?|Bitmap Heap Scan|Seq Scan) (?:using (\S+) )?on (\S+)/.exec(l)).find(Boolean);
    const executionMs = Number(/Execution Time: ([\d.]+) ms/.exec(lines.join('\n'))?.[1] ?? NaN);
    return {
      sql: `${statement.text}  -- $n = ${JSON.stringify(statement.values)}`,
      lines,
      access: access ? `${access[1]}${access[2] ? ` using ${access[2]}` : ''}` : 'unknown',
      indexScan: Boolean(access && /^Index/.test(access[1])),
      executionMs,
    };
  } finally {
    await db.close();
  }
}

function round(ms) {
  return Number(ms.toFixed(1));
}

function secs(since) {
  return ((performance.now() - since) / 1000).toFixed(1);
}

module.exports = { name, title, run };

if (require.main === module) require('./run').main([name]);
