'use strict';
// Request rates with autocannon (run in this process), and a closed-loop rate meter for
// baselines that are SDK calls rather than HTTP requests.
const autocannon = require('autocannon');

/**
 * Runs autocannon against the service for `seconds` with `connections` keep-alive connections.
 * Every answer must be 2xx: a benchmark that counts errors as throughput would flatter. Returns
 * { rate (req/s), p50, p99 (ms), requests }.
 */
async function loadTest(service, { path, method = 'GET', body, headers = {}, connections, seconds, auth = true }) {
  const result = await autocannon({
    url: `${service.origin}${path}`,
    method,
    body,
    headers: { ...(auth ? { authorization: `Bearer ${service.apiKey}` } : {}), ...headers },
    connections,
    duration: seconds,
    pipelining: 1,
  });
  const failures = result.non2xx + result.errors + result.timeouts;
  if (failures > 0) {
    throw new Error(`${method} ${path}: ${result.non2xx} non-2xx answers, ${result.errors} errors, ${result.timeouts} timeouts`);
  }
  return {
    rate: result.requests.total / (result.duration || seconds),
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
  };
}

/**
 * Calls `operation(i)` from `concurrency` loops for `seconds` (closed loop: each loop starts its
 * next call when the previous one finished, as an autocannon connection does). Returns
 * { rate (ops/s), p50, p99 (ms), requests }.
 */
async function closedLoop({ concurrency, seconds, operation }) {
  const latencies = [];
  let next = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await operation(next++);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  return { rate: latencies.length / elapsed, p50: at(0.5), p99: at(0.99), requests: latencies.length };
}

module.exports = { loadTest, closedLoop };
