'use strict';
// Small statistics and the side-by-side protocol every ratio in the benchmarks uses.

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const MiB = 1024 * 1024;
const fmt = {
  mib: (bytes) => (bytes / MiB).toFixed(1),
  rate: (bytes, ms) => ((bytes / MiB) * 1000) / ms,
  n: (value, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : String(value)),
};

/**
 * Runs `service` and `baseline` (each an async function resolving to a number, bigger = better)
 * `reps` times in alternating order (S B, B S, S B, …: neither always goes first, so drift on a
 * shared machine hits both alike), and returns every pair's ratio service/baseline and the
 * median ratio. `log` gets one line per pair.
 */
async function sideBySide({ reps, service, baseline, log = () => {}, label = '' }) {
  const pairs = [];
  for (let i = 0; i < reps; i++) {
    let s;
    let b;
    if (i % 2 === 0) {
      s = await service(i);
      b = await baseline(i);
    } else {
      b = await baseline(i);
      s = await service(i);
    }
    pairs.push({ service: s, baseline: b, ratio: s / b });
    log(`${label}rep ${i + 1}/${reps}: service ${fmt.n(s, 1)}, baseline ${fmt.n(b, 1)}, ratio ${fmt.n(s / b, 3)}`);
  }
  return {
    pairs,
    ratio: median(pairs.map((p) => p.ratio)),
    service: median(pairs.map((p) => p.service)),
    baseline: median(pairs.map((p) => p.baseline)),
  };
}

/** A row with a target: `at least` (ratio ≥ target) or `at most` (value ≤ target). */
function targetRow(metric, value, unit, { atLeast, atMost, ratio = false }) {
  const pass = atLeast !== undefined ? value >= atLeast : value <= atMost;
  const limit = atLeast ?? atMost;
  const shown = ratio ? limit.toFixed(2) : String(limit);
  const target = atLeast !== undefined ? `≥ ${shown}` : `≤ ${shown}${unit && !ratio ? ` ${unit}` : ''}`;
  return ratio ? { metric, value: Number(value.toFixed(3)), unit, ratio: Number(value.toFixed(3)), target, pass } : { metric, value: Number(value.toFixed(1)), unit, target, pass };
}

function log(name) {
  return (line) => process.stderr.write(`[${name}] ${line}\n`);
}

module.exports = { median, fmt, sideBySide, targetRow, log, MiB };
