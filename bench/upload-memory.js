#!/usr/bin/env node
// Memory under large uploads and downloads: starts the built service as a child process (real
// PostgreSQL, real S3 or fs storage), streams a SMALL and a LARGE file through it with no
// Content-Length (as the openai client does), samples the child's RSS while each runs, and prints
// the peak RSS growth of both and their ratio. Streaming means the growth does not scale with the
// file: the ratio stays near 1 although the large file is 10x the small one.
//
// Needs `npm run build` first and the same backends as the tests:
//   TEST_DATABASE_URL (admin URL), and TEST_S3_ENDPOINT/TEST_S3_ACCESS_KEY_ID/TEST_S3_SECRET_ACCESS_KEY
//   for BENCH_STORAGE=s3 (default); BENCH_STORAGE=fs needs only PostgreSQL.
// Sizes: BENCH_SMALL_MIB (default 20), BENCH_LARGE_MIB (default 200).
'use strict';
const { spawn } = require('node:child_process');
const { randomBytes, createHash } = require('node:crypto');
const { readFileSync, mkdtempSync, rmSync } = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { Client } = require('pg');
const { S3Client, CreateBucketCommand, DeleteBucketCommand } = require('@aws-sdk/client-s3');
const { migrate } = require('../dist/database/migrator');

const MiB = 1024 * 1024;
const STORAGE = process.env.BENCH_STORAGE || 's3';
const SMALL = Number(process.env.BENCH_SMALL_MIB || 20) * MiB;
const LARGE = Number(process.env.BENCH_LARGE_MIB || 200) * MiB;
const KEY = 'sk-bench-000000000001';

async function main() {
  const admin = requireEnv('TEST_DATABASE_URL');
  const dbName = `files_api_bench_${process.pid}`;
  await sql(admin, `CREATE DATABASE ${dbName}`);
  const dbUrl = withDatabase(admin, dbName);
  await migrate(dbUrl);
  const storage = await prepareStorage();
  const port = 20000 + (process.pid % 20000);
  const child = spawn(process.execPath, [path.join(__dirname, '../dist/main.js')], {
    env: {
      ...process.env,
      ...storage.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: dbUrl,
      API_KEYS: `${KEY}:bench`,
      FILES_MAX_BATCH_FILE_BYTES: String(LARGE + MiB),
      FILES_MAX_FILE_BYTES: String(LARGE + MiB),
      FILES_QUOTA_BYTES_PER_OWNER: String(4 * LARGE),
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  try {
    await waitReady(port);
    // Warm up allocator, JIT and connection pools so the first measured run is not penalised.
    const warm = await upload(port, 4 * MiB);
    await download(port, warm.id, 4 * MiB, warm.sha256);
    const rows = [];
    for (const size of [SMALL, LARGE]) {
      let id;
      const up = await measure(child.pid, async () => (id = await upload(port, size)));
      const down = await measure(child.pid, () => download(port, id.id, size, id.sha256));
      rows.push({ size, up, down });
    }
    const [small, large] = rows;
    console.log(`storage=${STORAGE}  sizes: small=${mib(SMALL)} MiB, large=${mib(LARGE)} MiB (x${(LARGE / SMALL).toFixed(0)})`);
    for (const r of rows) {
      console.log(
        `${mib(r.size).padStart(5)} MiB  upload: peak RSS +${mib(r.up.growth)} MiB, ${throughput(r.size, r.up.ms)} MiB/s` +
          `   download: peak RSS +${mib(r.down.growth)} MiB, ${throughput(r.size, r.down.ms)} MiB/s`,
      );
    }
    const ratio = (a, b) => (Math.max(a, MiB) / Math.max(b, MiB)).toFixed(2);
    console.log(`RSS growth ratio large/small: upload ${ratio(large.up.growth, small.up.growth)}, download ${ratio(large.down.growth, small.down.growth)} (1.00 = flat; x${(LARGE / SMALL).toFixed(0)} = buffering)`);
    console.log(`peak RSS growth / file size (large): upload ${pct(large.up.growth, LARGE)}, download ${pct(large.down.growth, LARGE)}`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await sql(admin, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await storage.cleanup();
  }
}

async function prepareStorage() {
  if (STORAGE === 'fs') {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'files-api-bench-'));
    return { env: { STORAGE_DRIVER: 'fs', FS_STORAGE_DIR: dir }, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const endpoint = requireEnv('TEST_S3_ENDPOINT');
  const bucket = `files-api-bench-${randomBytes(4).toString('hex')}`;
  const credentials = { accessKeyId: process.env.TEST_S3_ACCESS_KEY_ID, secretAccessKey: process.env.TEST_S3_SECRET_ACCESS_KEY };
  const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials, requestChecksumCalculation: 'WHEN_REQUIRED' });
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  return {
    env: {
      STORAGE_DRIVER: 's3', S3_ENDPOINT: endpoint, S3_BUCKET: bucket, S3_FORCE_PATH_STYLE: 'true',
      S3_ACCESS_KEY_ID: credentials.accessKeyId, S3_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    },
    cleanup: async () => {
      // The service deleted what it stored (see below); remove the bucket itself.
      await s3.send(new DeleteBucketCommand({ Bucket: bucket })).catch((e) => console.warn(`bucket not removed: ${e.name}`));
      s3.destroy();
    },
  };
}

/** Samples the child's RSS every 50 ms while `work` runs. */
async function measure(pid, work) {
  const base = rss(pid);
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, rss(pid))), 50);
  const started = Date.now();
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  peak = Math.max(peak, rss(pid));
  return { growth: peak - base, ms: Date.now() - started };
}

function rss(pid) {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match[1]) * 1024;
}

/** Streams `size` pseudo-random bytes as a chunked multipart upload, file part first. */
function upload(port, size) {
  const boundary = `----bench${randomBytes(8).toString('hex')}`;
  const hash = createHash('sha256');
  return new Promise((resolve, reject) => {
    const req = http.request({
      port, host: '127.0.0.1', method: 'POST', path: '/v1/files',
      headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Transfer-Encoding': 'chunked' },
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`upload ${res.statusCode}: ${body}`));
        resolve({ id: JSON.parse(body).id, sha256: hash.digest('hex') });
      });
    });
    req.on('error', reject);
    req.write(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.jsonl"\r\nContent-Type: application/octet-stream\r\n\r\n`);
    const block = randomBytes(MiB);
    let sent = 0;
    const pump = () => {
      while (sent < size) {
        const chunk = block.subarray(0, Math.min(MiB, size - sent));
        sent += chunk.length;
        hash.update(chunk);
        if (!req.write(chunk)) return req.once('drain', pump);
      }
      req.end(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--${boundary}--\r\n`);
    };
    pump();
  });
}

/** Downloads and verifies the content, then deletes the file. */
async function download(port, id, size, sha256) {
  const hash = createHash('sha256');
  let received = 0;
  await new Promise((resolve, reject) => {
    http.get({ port, host: '127.0.0.1', path: `/v1/files/${id}/content`, headers: { Authorization: `Bearer ${KEY}` } }, (res) => {
      res.on('data', (c) => {
        received += c.length;
        hash.update(c);
      });
      res.on('end', resolve);
      res.on('error', reject);
    }).on('error', reject);
  });
  if (received !== size || hash.digest('hex') !== sha256) throw new Error(`download of ${id} differs from the upload`);
  await new Promise((resolve, reject) =>
    http.request({ port, host: '127.0.0.1', method: 'DELETE', path: `/v1/files/${id}`, headers: { Authorization: `Bearer ${KEY}` } }, (res) => {
      res.resume();
      res.on('end', resolve);
    }).on('error', reject).end(),
  );
}

async function waitReady(port) {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((resolve) =>
      http.get({ port, host: '127.0.0.1', path: '/readyz' }, (res) => { res.resume(); resolve(res.statusCode === 200); }).on('error', () => resolve(false)),
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('service did not become ready');
}

async function sql(url, statement) {
  const client = new Client({ connectionString: url });
  await client.connect();
  try { await client.query(statement); } finally { await client.end(); }
}

function withDatabase(url, db) { const u = new URL(url); u.pathname = `/${db}`; return u.toString(); }
function requireEnv(name) { const v = process.env[name]; if (!v) throw new Error(`${name} is required (see the header of bench/upload-memory.js)`); return v; }
function mib(bytes) { return (bytes / MiB).toFixed(1); }
function pct(a, b) { return `${((100 * a) / b).toFixed(1)}%`; }
function throughput(size, ms) { return (size / MiB / (ms / 1000)).toFixed(1); }

main().catch((error) => { console.error(error); process.exit(1); });
