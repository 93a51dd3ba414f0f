import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/backends';
import { startServiceProcess } from '../support/service-process';

const KEY = 'sk-lifecycle-0000000001';
const MAIN = path.resolve(__dirname, '../../dist/main.js');

/** Runs dist/main.js with exactly `env` and returns how it exited and what it printed. */
function runUntilExit(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    }),
  );
}

describe('service process lifecycle', () => {
  let db: TestDatabase;
  let dir: string;
  const baseEnv = () => ({ DATABASE_URL: db.url, API_KEYS: `${KEY}:owner`, FS_STORAGE_DIR: dir });

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = await mkdtemp(path.join(tmpdir(), 'files-api-lifecycle-'));
  });
  afterAll(async () => {
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['DATABASE_URL', { DATABASE_URL: '' }],
    ['DATABASE_URL', { DATABASE_URL: 'mysql://x' }],
    // An empty API_KEYS is valid since managed keys exist (test/integration/api-keys-cli.spec.ts).
    ['API_KEYS', { API_KEYS: 'sk-without-an-owner' }],
    ['API_KEYS', { API_KEYS: 'short:owner' }],
    ['STORAGE_DRIVER', { STORAGE_DRIVER: 'bogus' }],
    ['S3_BUCKET', { STORAGE_DRIVER: 's3' }],
    ['PORT', { PORT: 'abc' }],
    ['FILES_MAX_BATCH_FILE_BYTES', { FILES_MAX_BATCH_FILE_BYTES: '2000', FILES_MAX_FILE_BYTES: '1000' }],
    ['FILES_QUOTA_BYTES_PER_OWNER', { FILES_QUOTA_BYTES_PER_OWNER: '-5' }],
  ])('refuses to start when %s is invalid, naming it', async (variable, bad) => {
    const { code, output } = await runUntilExit({ ...baseEnv(), ...bad });
    expect(code).toBe(78);
    expect(output).toContain(`Invalid configuration: ${variable}`);
    expect(output).not.toContain('listening on');
  });

  it('finishes an in-flight upload on SIGTERM, refuses new connections, then exits 0', async () => {
    const service = await startServiceProcess({ ...baseEnv(), SHUTDOWN_GRACE_SECONDS: '20' });
    const boundary = `lifecycle-${randomBytes(6).toString('hex')}`;
    const req = request(`${service.origin}/v1/files`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${KEY}`,
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'transfer-encoding': 'chunked',
      },
    });
    const response = new Promise<{ status: number; body: any }>((resolve, reject) => {
      req.on('response', (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      });
      req.on('error', reject);
    });
    const hash = createHash('sha256');
    const send = (data: Buffer) => {
      hash.update(data);
      req.write(data);
    };
    req.write(`--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n`);
    req.write(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.jsonl"\r\n\r\n`);
    send(randomBytes(64 * 1024));
    await new Promise((r) => setTimeout(r, 300));

    service.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    // The listener is closed: a new client cannot get in while the old request finishes.
    await expect(fetch(`${service.origin}/healthz`)).rejects.toThrow();
    for (let i = 0; i < 5; i++) {
      send(randomBytes(64 * 1024));
      await new Promise((r) => setTimeout(r, 200));
    }
    req.end(`\r\n--${boundary}--\r\n`);

    const { status, body } = await response;
    expect(status).toBe(200);
    expect(body.bytes).toBe(6 * 64 * 1024);
    expect(await service.exited).toBe(0);

    const client = new Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query(`SELECT state, sha256, bytes FROM files`);
      expect(rows).toEqual([{ state: 'ready', sha256: hash.digest('hex'), bytes: String(6 * 64 * 1024) }]);
    } finally {
      await client.end();
    }
  });
});
