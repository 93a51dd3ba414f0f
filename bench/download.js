'use strict';
// 2. Download throughput: `GET /v1/files/{id}/content` of a large file vs. GetObject of the very
// same object by this same process straight from the S3 server. Both bodies are consumed by
// counting bytes (no hashing on the client). Alternating, median ratio.
// Env: BENCH_DOWNLOAD_MIB (default 200), BENCH_THROUGHPUT_REPS (default 6).
const { GetObjectCommand } = require('@aws-sdk/client-s3');
const { scoped } = require('./lib/cleanup');
const { uploadFile, downloadFile, payloadSha256 } = require('./lib/client');
const { startService } = require('./lib/service');
const { num, MiB, uploadEnv } = require('./lib/settings');
const { fmt, sideBySide, targetRow, log } = require('./lib/stats');

const name = 'download';

async function run() {
  const size = num('BENCH_DOWNLOAD_MIB', 200) * MiB;
  const reps = num('BENCH_THROUGHPUT_REPS', 6);
  const say = log(name);
  return scoped(async () => {
    const service = await startService(name, { env: uploadEnv() });
    const s3 = service.bucket.client;
    const file = await uploadFile(service, size);
    const key = `files/${file.id}`;
    const viaService = async () => {
      const started = performance.now();
      const { bytes, etag } = await downloadFile(service, file.id);
      const ms = performance.now() - started;
      if (bytes !== size) throw new Error(`service sent ${bytes} bytes of ${size}`);
      if (etag !== `"${payloadSha256(size)}"`) throw new Error(`service ETag ${etag} is not the payload's SHA-256`);
      return fmt.rate(size, ms);
    };
    const direct = async () => {
      const started = performance.now();
      const out = await s3.send(new GetObjectCommand({ Bucket: service.bucket.bucket, Key: key }));
      let bytes = 0;
      for await (const chunk of out.Body) bytes += chunk.length;
      const ms = performance.now() - started;
      if (bytes !== size) throw new Error(`GetObject returned ${bytes} bytes of ${size}`);
      return fmt.rate(size, ms);
    };
    await viaService();
    await direct();
    say(`${fmt.mib(size)} MiB object ${key}, ${reps} alternating reps`);
    const result = await sideBySide({ reps, service: viaService, baseline: direct, log: say });
    return {
      rows: [
        { metric: `GET /files/{id}/content, ${fmt.mib(size)} MiB (median)`, value: Number(result.service.toFixed(1)), unit: 'MiB/s' },
        { metric: 'GetObject direct from S3 (median)', value: Number(result.baseline.toFixed(1)), unit: 'MiB/s' },
        targetRow('download throughput, service / direct', result.ratio, '', { atLeast: 0.95, ratio: true }),
      ],
      details: { size, reps, pairs: result.pairs },
    };
  });
}

module.exports = { name, title: '2. Download throughput', run };
if (require.main === module) require('./run').main([name]);
