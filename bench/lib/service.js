'use strict';
// The built service (dist/main.js) as a child process, as `npm start` runs it, on a fresh database
// and bucket; and its memory, read from /proc.
const { spawn } = require('node:child_process');
const { existsSync, readFileSync, writeFileSync } = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { createBucket, createDatabase, MiB } = require('./backends');
const { defer } = require('./cleanup');

const { ROOT, DIST } = require('./dist');

const MAIN = path.join(DIST, 'main.js');
const API_KEY = 'sk-bench-000000000001';
const OWNER = 'bench';

/**
 * Starts the service on a fresh database and bucket. `env` overrides the defaults (generous
 * limits; everything else as shipped, so the benchmark measures the service's defaults).
 * BENCH_CPU_PROF=<dir> starts it with `--cpu-prof`: a .cpuprofile lands in <dir> when it stops.
 * Returns { origin, port, pid, bucket, database, stop() }; stop() also runs on failure/Ctrl-C.
 */
async function startService(label, { env = {}, nodeArgs = [] } = {}) {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first (npm run bench does)`);
  const database = await createDatabase(label);
  const bucket = await createBucket(label);
  const port = await freePort();
  const profDir = process.env.BENCH_CPU_PROF;
  const args = [...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(profDir)}`, `--cpu-prof-name=${label}-${Date.now()}.cpuprofile`] : []), ...nodeArgs, MAIN];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL: database.url,
      ...bucket.env,
      API_KEYS: `${API_KEY}:${OWNER}`,
      FILES_MAX_BATCH_FILE_BYTES: String(512 * MiB),
      FILES_MAX_FILE_BYTES: String(512 * MiB),
      FILES_QUOTA_BYTES_PER_OWNER: String(1024 * 1024 * MiB),
      FILES_MAX_CONCURRENT_UPLOADS: '256',
      FILES_MAX_CONCURRENT_UPLOADS_PER_OWNER: '64',
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  let tail = '';
  const relay = (data) => {
    tail = (tail + data).slice(-4000);
    if (process.env.BENCH_VERBOSE) process.stderr.write(`[service] ${data}`);
  };
  child.stdout.on('data', relay);
  child.stderr.on('data', relay);
  const stop = defer(`service ${label}`, async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    }
  });
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`service exited (${child.exitCode}) before it was ready:\n${tail}`);
    if ((await status(port, '/readyz')) === 200) break;
    if (Date.now() > deadline) throw new Error(`service not ready within 30 s:\n${tail}`);
    await sleep(100);
  }
  return { origin, port, pid: child.pid, bucket, database, apiKey: API_KEY, owner: OWNER, stop, output: () => tail };
}

function status(port, urlPath) {
  return new Promise((resolve) => {
    http
      .get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode);
      })
      .on('error', () => resolve(0));
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** Resident memory of `pid` in bytes: { rss, hwm } (hwm = peak since start or the last resetPeak). */
function memoryOf(pid) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Resets the kernel's peak-RSS mark (VmHWM) of `pid`; false where the kernel does not allow it. */
function resetPeak(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `work` while tracking the peak RSS of `pid`: the kernel's own high-water mark (exact, reset
 * first) where available, and a 10 ms sampler as a cross-check. Returns { peak, ms, result }.
 */
async function withPeakRss(pid, work) {
  const exact = resetPeak(pid);
  let sampled = memoryOf(pid).rss;
  const timer = setInterval(() => {
    try {
      sampled = Math.max(sampled, memoryOf(pid).rss);
    } catch {
      // process gone; the work will fail on its own
    }
  }, 10);
  const started = performance.now();
  let result;
  try {
    result = await work();
  } finally {
    clearInterval(timer);
  }
  const ms = performance.now() - started;
  const now = memoryOf(pid);
  sampled = Math.max(sampled, now.rss);
  return { peak: exact ? Math.max(now.hwm, sampled) : sampled, exact, ms, result };
}

/** Idle RSS: the median of a few samples over `ms`, once the process has settled. */
async function idleRss(pid, ms = 1500) {
  const samples = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    samples.push(memoryOf(pid).rss);
    await sleep(100);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

module.exports = { startService, memoryOf, withPeakRss, idleRss, sleep, API_KEY, OWNER };
