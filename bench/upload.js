'use strict';
// 1. Upload throughput: one large batch file through `POST /v1/files` (streamed like the openai
// client sends it) vs. the same bytes sent by this same process straight to the S3 server with
// @aws-sdk/lib-storage, with the service's part size and queue size. Alternating, median ratio.
// Env: BENCH_UPLOAD_MIB (default 200), BENCH_THROUGHPUT_REPS (default 6).
const { Upload } = require('@aws-sdk/lib-storage');
const { DeleteObjectCommand } = require('@aws-sdk/client-s3');
const { scoped } = require('./lib/cleanup');
const { uploadFile, deleteFile, payloadStream } = require('./lib/client');
const { startService } = require('./lib/service');
const { num, MiB, uploadSettings, uploadEnv } = require('./lib/settings');
const { fmt, sideBySide, targetRow, log } = require('./lib/stats');

const name = 'upload';

async function run() {
  const size = num('BENCH_UPLOAD_MIB', 200) * MiB;
  const reps = num('BENCH_THROUGHPUT_REPS', 6);
  const { partSize, queueSize } = uploadSettings();
  const say = log(name);
  return scoped(async () => {
    const service = await startService(name, { env: uploadEnv() });
    const s3 = service.bucket.client;
    const viaService = async () => {
      const started = performance.now();
      const file = await uploadFile(service, size);
      const ms = performance.now() - started;
      await deleteFile(service, file.id);
      return fmt.rate(size, ms);
    };
    let n = 0;
    const direct = async () => {
      const key = `direct/upload-${n++}`;
      const started = performance.now();
      await new Upload({
        client: s3,
        params: { Bucket: service.bucket.bucket, Key: key, Body: payloadStream(size), ContentType: 'application/octet-stream' },
        partSize,
        queueSize,
        leavePartsOnError: false,
      }).done();
      const ms = performance.now() - started;
      await s3.send(new DeleteObjectCommand({ Bucket: service.bucket.bucket, Key: key }));
      return fmt.rate(size, ms);
    };
    // Warm both paths (JIT, connection pools, first multipart upload) before measuring.
    const warm = Math.min(size, 3 * partSize);
    await deleteFile(service, (await uploadFile(service, warm)).id);
    await new Upload({ client: s3, params: { Bucket: service.bucket.bucket, Key: 'direct/warm', Body: payloadStream(warm) }, partSize, queueSize }).done();
    say(`${fmt.mib(size)} MiB, part ${fmt.mib(partSize)} MiB × queue ${queueSize}, ${reps} alternating reps`);
    const result = await sideBySide({ reps, service: viaService, baseline: direct, log: say });
    return {
      rows: [
        { metric: `POST /files, ${fmt.mib(size)} MiB (median)`, value: Number(result.service.toFixed(1)), unit: 'MiB/s' },
        { metric: `lib-storage Upload direct to S3 (median)`, value: Number(result.baseline.toFixed(1)), unit: 'MiB/s' },
        targetRow('upload throughput, service / direct', result.ratio, '', { atLeast: 0.9, ratio: true }),
      ],
      details: { size, reps, partSize, queueSize, pairs: result.pairs },
    };
  });
}

module.exports = { name, title: '1. Upload throughput', run };
if (require.main === module) require('./run').main([name]);
