'use strict';
// 7. Small files: 1 KiB uploads per second through `POST /v1/files` at 16 connections
// (autocannon; one multipart body with Content-Length, file part first) vs. the S3 server's own
// PutObject rate for 1 KiB objects from this same process: 16 loops of PutObjectCommand (the
// same SDK, keep-alive agent and settings the service uses), each starting its next call when the
// last one answered, like an autocannon connection. Rounds alternate; median ratio.
// Env: BENCH_SMALL_KIB (default 1), BENCH_SMALL_CONNECTIONS (16), BENCH_RATE_SECONDS (5),
// BENCH_RATE_ROUNDS (3).
const { PutObjectCommand } = require('@aws-sdk/client-s3');
const { scoped } = require('./lib/cleanup');
const { smallUploadBody, BLOCK } = require('./lib/client');
const { loadTest, closedLoop } = require('./lib/rates');
const { startService } = require('./lib/service');
const { num } = require('./lib/settings');
const { median, targetRow, log } = require('./lib/stats');

const name = 'small-files';

async function run() {
  const size = Math.round(num('BENCH_SMALL_KIB', 1) * 1024);
  const connections = num('BENCH_SMALL_CONNECTIONS', 16);
  const seconds = num('BENCH_RATE_SECONDS', 5);
  const rounds = num('BENCH_RATE_ROUNDS', 3);
  const say = log(name);
  return scoped(async () => {
    const service = await startService(name);
    const s3 = service.bucket.client;
    const { body, contentType } = smallUploadBody(size);
    const data = BLOCK.subarray(0, size);
    const viaService = (secs) => loadTest(service, { path: '/v1/files', method: 'POST', body, headers: { 'content-type': contentType }, connections, seconds: secs });
    let round = 0;
    const direct = (secs) =>
      closedLoop({
        concurrency: connections,
        seconds: secs,
        operation: (i) =>
          s3.send(new PutObjectCommand({ Bucket: service.bucket.bucket, Key: `direct/r${round}-${i}`, Body: data, ContentType: 'application/octet-stream' })),
      });
    await viaService(1);
    await direct(1);
    const results = { service: [], direct: [] };
    for (; round < rounds; round++) {
      const order = round % 2 === 0 ? ['service', 'direct'] : ['direct', 'service'];
      for (const key of order) results[key].push(await (key === 'service' ? viaService : direct)(seconds));
      const s = results.service.at(-1);
      const d = results.direct.at(-1);
      say(`round ${round + 1}/${rounds}: POST /files ${s.rate.toFixed(0)}/s (p50 ${s.p50} ms), PutObject ${d.rate.toFixed(0)}/s (p50 ${d.p50.toFixed(1)} ms), ratio ${(s.rate / d.rate).toFixed(3)}`);
    }
    const ratio = median(results.service.map((s, i) => s.rate / results.direct[i].rate));
    const kib = `${size / 1024} KiB`;
    return {
      rows: [
        { metric: `POST /files ${kib} at ${connections} connections (median)`, value: Math.round(median(results.service.map((r) => r.rate))), unit: 'uploads/s' },
        { metric: 'POST /files latency p50 / p99', value: `${median(results.service.map((r) => r.p50))} / ${median(results.service.map((r) => r.p99))}`, unit: 'ms' },
        { metric: `PutObject ${kib} direct, ${connections} in flight (median)`, value: Math.round(median(results.direct.map((r) => r.rate))), unit: 'puts/s' },
        { metric: 'PutObject latency p50 / p99', value: `${median(results.direct.map((r) => r.p50)).toFixed(1)} / ${median(results.direct.map((r) => r.p99)).toFixed(1)}`, unit: 'ms' },
        { metric: 'small uploads, service / direct PutObject', value: Number(ratio.toFixed(3)), unit: '', ratio: Number(ratio.toFixed(3)) },
      ],
      details: results,
    };
  });
}

module.exports = { name, title: '7. Small files', run };
if (require.main === module) require('./run').main([name]);
