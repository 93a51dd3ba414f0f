'use strict';
// 4. Metadata rate: `GET /v1/files/{id}` and `GET /v1/files?limit=20` requests per second at 32
// connections (autocannon), against `GET /healthz` (no database, no auth) on the same server in
// the same run. Rounds alternate the order of the three; each ratio is the median over rounds of
// endpoint rate / healthz rate. p50/p99 are autocannon's, median over rounds.
// Env: BENCH_RATE_SECONDS (per measurement, default 5), BENCH_RATE_ROUNDS (default 3),
// BENCH_METADATA_CONNECTIONS (default 32), BENCH_METADATA_FILES (files of the owner, default 50).
const { scoped } = require('./lib/cleanup');
const { uploadFile } = require('./lib/client');
const { loadTest } = require('./lib/rates');
const { startService } = require('./lib/service');
const { num } = require('./lib/settings');
const { median, targetRow, log } = require('./lib/stats');

const name = 'metadata';

async function run() {
  const seconds = num('BENCH_RATE_SECONDS', 5);
  const rounds = num('BENCH_RATE_ROUNDS', 3);
  const connections = num('BENCH_METADATA_CONNECTIONS', 32);
  const files = num('BENCH_METADATA_FILES', 50);
  const say = log(name);
  return scoped(async () => {
    const service = await startService(name);
    let file;
    for (let i = 0; i < files; i++) file = await uploadFile(service, 1024);
    const targets = {
      healthz: { path: '/healthz', auth: false },
      retrieve: { path: `/v1/files/${file.id}` },
      list: { path: '/v1/files?limit=20' },
    };
    // Warm-up: JIT, connection pools, Prisma's query caches.
    for (const t of Object.values(targets)) await loadTest(service, { ...t, connections, seconds: 1 });
    const results = { healthz: [], retrieve: [], list: [] };
    const orders = [['healthz', 'retrieve', 'list'], ['list', 'retrieve', 'healthz'], ['retrieve', 'healthz', 'list']];
    for (let round = 0; round < rounds; round++) {
      for (const key of orders[round % orders.length]) results[key].push(await loadTest(service, { ...targets[key], connections, seconds }));
      const r = (k) => results[k].at(-1);
      say(
        `round ${round + 1}/${rounds}: healthz ${r('healthz').rate.toFixed(0)}/s, retrieve ${r('retrieve').rate.toFixed(0)}/s ` +
          `(${(r('retrieve').rate / r('healthz').rate).toFixed(3)}), list ${r('list').rate.toFixed(0)}/s (${(r('list').rate / r('healthz').rate).toFixed(3)})`,
      );
    }
    const ratio = (k) => median(results[k].map((r, i) => r.rate / results.healthz[i].rate));
    const rows = [];
    for (const [key, label] of [['healthz', 'GET /healthz'], ['retrieve', 'GET /files/{id}'], ['list', 'GET /files?limit=20']]) {
      rows.push({ metric: `${label} at ${connections} connections (median)`, value: Math.round(median(results[key].map((r) => r.rate))), unit: 'req/s' });
      rows.push({ metric: `${label} latency p50 / p99`, value: `${median(results[key].map((r) => r.p50))} / ${median(results[key].map((r) => r.p99))}`, unit: 'ms' });
    }
    rows.push(targetRow('GET /files/{id} rate / healthz rate', ratio('retrieve'), '', { atLeast: 0.5, ratio: true }));
    rows.push(targetRow('GET /files?limit=20 rate / healthz rate', ratio('list'), '', { atLeast: 0.5, ratio: true }));
    return { rows, details: results };
  });
}

module.exports = { name, title: '4. Metadata rate', run };
if (require.main === module) require('./run').main([name]);
