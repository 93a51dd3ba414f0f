#!/usr/bin/env node
'use strict';
/*
 * `npm run bench` (= npm run build && node bench/run.js): runs every benchmark in sequence and
 * prints one table. `npm run bench -- upload download` runs only those.
 *
 * Interface of a benchmark (bench/<name>.js, plain CommonJS, using the BUILT service in dist/):
 *
 *   module.exports = { name, title?, run };
 *   // name:  what you type after `npm run bench --` (e.g. 'listing')
 *   // title: heading in the table (e.g. '5. Listing at scale'); defaults to name
 *   // run(): async, resolves to
 *   //   { rows: [{ metric, value, unit, ratio?, target?, pass? }] }
 *   //   metric: what was measured ('GET /files?limit=20 at 100k files'), value: number, unit: 'req/s'…
 *   //   ratio:  the side-by-side ratio, when the row is one
 *   //   target: the target as text ('≥ 0.90', '≤ 64 MiB'), pass: whether it is met (boolean).
 *   //   A row with a boolean `pass` is graded PASS/MISS; others are informational.
 *   // Progress goes to stderr; run() must clean up what it created (bench/lib/cleanup.js `scoped`
 *   // does it, also on failure and Ctrl-C). A run() that throws is reported as FAILED.
 *
 * Shared helpers: bench/lib/service.js (startService: fresh database + bucket + the built service
 * as a child process; memory from /proc), bench/lib/backends.js (TEST_* backends, S3 client),
 * bench/lib/client.js (uploads/downloads as the openai client sends them), bench/lib/stats.js
 * (median, alternating side-by-side runs, target rows), bench/lib/rates.js (autocannon).
 *
 * Exit status: 0 when every benchmark ran (even if a target was MISSED: it is printed loudly),
 * 1 when a benchmark failed to run, 2 on unknown benchmark names.
 */
const path = require('node:path');
const { existsSync } = require('node:fs');

/** In the order they run. Missing modules (not written yet) are skipped with a note. */
const BENCHMARKS = ['upload', 'download', 'memory', 'metadata', 'listing', 'expiry', 'small-files'];

function load(name) {
  const file = path.join(__dirname, `${name}.js`);
  if (!existsSync(file)) return null;
  const mod = require(file);
  if (typeof mod.run !== 'function') throw new Error(`bench/${name}.js does not export run()`);
  return mod;
}

async function main(argv = process.argv.slice(2)) {
  const wanted = argv.filter((a) => !a.startsWith('-'));
  const unknown = wanted.filter((n) => !BENCHMARKS.includes(n));
  if (unknown.length > 0) {
    console.error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${BENCHMARKS.join(', ')}`);
    process.exit(2);
  }
  const selected = wanted.length > 0 ? BENCHMARKS.filter((n) => wanted.includes(n)) : BENCHMARKS;
  const results = [];
  const started = Date.now();
  for (const name of selected) {
    const mod = load(name);
    if (!mod) {
      console.error(`\n=== ${name}: bench/${name}.js not present, skipped`);
      results.push({ name, title: name, skipped: true, rows: [] });
      continue;
    }
    const title = mod.title ?? name;
    console.error(`\n=== ${title}`);
    const t0 = Date.now();
    try {
      const { rows } = await mod.run();
      results.push({ name, title, rows, seconds: (Date.now() - t0) / 1000 });
    } catch (error) {
      console.error(`[${name}] FAILED: ${error.stack ?? error}`);
      results.push({ name, title, failed: String(error.message ?? error), rows: [], seconds: (Date.now() - t0) / 1000 });
    }
  }
  print(results, (Date.now() - started) / 1000);
  const failed = results.filter((r) => r.failed).length;
  process.exitCode = failed > 0 ? 1 : 0;
  return results;
}

function print(results, seconds) {
  const header = ['benchmark', 'metric', 'value', 'unit', 'target', 'result'];
  const lines = [];
  for (const r of results) {
    if (r.skipped) lines.push([r.title, '(not present)', '', '', '', 'SKIPPED']);
    else if (r.failed) lines.push([r.title, r.failed.slice(0, 70), '', '', '', 'FAILED']);
    for (const row of r.rows) {
      const result = typeof row.pass === 'boolean' ? (row.pass ? 'PASS' : 'MISS') : '';
      lines.push([r.title, row.metric, formatValue(row.value), row.unit ?? '', row.target ?? '', result]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => String(l[i]).length)));
  const fmtLine = (l) => l.map((c, i) => (i === 2 ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i]))).join(' | ');
  const out = [];
  out.push('');
  out.push(`files-api benchmarks (${new Date().toISOString()}, node ${process.version}, ${require('node:os').cpus().length} cores, ${seconds.toFixed(0)} s)`);
  out.push(fmtLine(header));
  out.push(widths.map((w) => '-'.repeat(w)).join('-|-'));
  for (const l of lines) out.push(fmtLine(l));
  const misses = results.flatMap((r) => r.rows.filter((row) => row.pass === false).map((row) => `${r.title}: ${row.metric} = ${formatValue(row.value)} (target ${row.target})`));
  const failures = results.filter((r) => r.failed);
  out.push('');
  if (misses.length === 0 && failures.length === 0) {
    out.push(`All ${results.flatMap((r) => r.rows).filter((row) => typeof row.pass === 'boolean').length} graded targets met.`);
  } else {
    if (misses.length > 0) {
      out.push('!'.repeat(72));
      out.push(`!!! ${misses.length} TARGET(S) MISSED:`);
      for (const m of misses) out.push(`!!!   ${m}`);
      out.push('!'.repeat(72));
    }
    for (const f of failures) out.push(`FAILED to run: ${f.title}: ${f.failed}`);
  }
  console.log(out.join('\n'));
}

function formatValue(value) {
  if (typeof value !== 'number') return String(value ?? '');
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 100 ? value.toFixed(0) : Math.abs(value) >= 10 ? value.toFixed(1) : value.toFixed(3).replace(/0+$/, '').replace(/\.$/, '');
}

module.exports = { main, BENCHMARKS };
if (require.main === module) {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
