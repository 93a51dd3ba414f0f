'use strict';
// 3. Memory: the service's peak RSS while it takes a 10 MiB upload, a 200 MiB upload, and 8
// concurrent 50 MiB uploads, each minus its idle RSS (and, for information, the peak during a
// download of the large file right after its upload, minus the RSS just before that download). Every scenario runs on a freshly started
// service (warmed with one 1 KiB upload, download and delete, so JIT and pools are up but no part
// buffer was ever allocated), so none inherits another's heap. The peak is the kernel's own
// high-water mark (VmHWM, reset before the scenario), cross-checked by a 10 ms sampler.
// Targets: every growth ≤ 64 MiB, and 200 MiB minus 10 MiB ≤ 16 MiB (memory must not grow with
// the file). Env: BENCH_MEMORY_SMALL_MIB (10), BENCH_MEMORY_LARGE_MIB (200),
// BENCH_MEMORY_CONCURRENT (8), BENCH_MEMORY_CONCURRENT_MIB (50).
const { scoped } = require('./lib/cleanup');
const { uploadFile, deleteFile, downloadFile } = require('./lib/client');
const { startService, withPeakRss, idleRss, memoryOf } = require('./lib/service');
const { num, MiB, uploadSettings, uploadEnv } = require('./lib/settings');
const { fmt, targetRow, log } = require('./lib/stats');

const name = 'memory';
const LIMIT_MIB = 64;
const FLAT_MIB = 16;

async function scenario(label, files, size) {
  return scoped(async () => {
    const service = await startService(`${name}-${label}`, { env: uploadEnv() });
    const warm = await uploadFile(service, 1024);
    await downloadFile(service, warm.id);
    await deleteFile(service, warm.id);
    const idle = await idleRss(service.pid);
    const measured = await withPeakRss(service.pid, () => Promise.all(Array.from({ length: files }, () => uploadFile(service, size))));
    // Downloads stream too; measured on the same process after the uploads (informational).
    const before = memoryOf(service.pid).rss;
    const down = files === 1 ? await withPeakRss(service.pid, () => downloadFile(service, measured.result[0].id)) : undefined;
    for (const file of measured.result) await deleteFile(service, file.id);
    return {
      idle,
      peak: measured.peak,
      growth: measured.peak - idle,
      ms: measured.ms,
      exact: measured.exact,
      downloadGrowth: down ? down.peak - before : undefined,
    };
  });
}

async function run() {
  const small = num('BENCH_MEMORY_SMALL_MIB', 10) * MiB;
  const large = num('BENCH_MEMORY_LARGE_MIB', 200) * MiB;
  const concurrent = num('BENCH_MEMORY_CONCURRENT', 8);
  const concurrentSize = num('BENCH_MEMORY_CONCURRENT_MIB', 50) * MiB;
  const { partSize, queueSize } = uploadSettings();
  const say = log(name);
  say(`part ${fmt.mib(partSize)} MiB × queue ${queueSize}; fresh service per scenario`);
  const results = {};
  for (const [key, files, size] of [
    ['small', 1, small],
    ['large', 1, large],
    ['concurrent', concurrent, concurrentSize],
  ]) {
    const r = await scenario(key, files, size);
    results[key] = r;
    say(
      `${files} × ${fmt.mib(size)} MiB: idle ${fmt.mib(r.idle)} MiB, peak ${fmt.mib(r.peak)} MiB (${r.exact ? 'VmHWM' : 'sampled'}), ` +
        `growth ${fmt.mib(r.growth)} MiB, ${fmt.n(fmt.rate(files * size, r.ms), 1)} MiB/s`,
    );
  }
  const growth = (key) => results[key].growth / MiB;
  return {
    rows: [
      targetRow(`peak RSS − idle, 1 × ${fmt.mib(small)} MiB upload`, growth('small'), 'MiB', { atMost: LIMIT_MIB }),
      targetRow(`peak RSS − idle, 1 × ${fmt.mib(large)} MiB upload`, growth('large'), 'MiB', { atMost: LIMIT_MIB }),
      targetRow(`peak RSS − idle, ${concurrent} × ${fmt.mib(concurrentSize)} MiB concurrent uploads`, growth('concurrent'), 'MiB', { atMost: LIMIT_MIB }),
      targetRow(`growth(${fmt.mib(large)} MiB) − growth(${fmt.mib(small)} MiB)`, growth('large') - growth('small'), 'MiB', { atMost: FLAT_MIB }),
      { metric: `peak RSS during a ${fmt.mib(large)} MiB download − RSS before it`, value: Number((results.large.downloadGrowth / MiB).toFixed(1)), unit: 'MiB' },
    ],
    details: results,
  };
}

module.exports = { name, title: '3. Memory', run };
if (require.main === module) require('./run').main([name]);
