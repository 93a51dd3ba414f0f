import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Clock, ExpirySweeper, FilesService, type FileExpiredEvent } from 'files-api';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI, { toFile } from 'openai';
import { TestClock } from '../../../test/support/app';
import { createTestBucket, createTestDatabase, listKeys, listMultipartUploads, type TestBucket, type TestDatabase } from '../../../test/support/backends';
import { BatchRunner } from '../src/batches/batch.runner';
import { EchoModel } from '../src/batches/echo.model';
import type { PlatformConfig } from '../src/platform.config';
import { PlatformModule } from '../src/platform.module';

const HOUR_SECONDS = 3600;
/** The test platform writes outputs that live 2 hours (inputs keep files-api's 30-day default). */
const OUTPUT_LIFETIME_SECONDS = 2 * HOUR_SECONDS;
const QUOTA_BYTES = 100_000;

/** Platform users, each test with its own. Their tokens are the platform's, not files-api keys. */
const USERS = ['ana', 'ben', 'del', 'exp', 'val', 'quo', 'old'] as const;
type User = (typeof USERS)[number];
const tokenOf = (user: User) => `platform-token-of-${user}`;
const ownerOf = (user: User) => `user-${user}`;

/** EchoModel that can stop the runner before the n-th request from now until the test lets it go. */
class HeldModel extends EchoModel {
  private hold?: { remaining: number; reached: () => void; released: Promise<void> };
  private releases: (() => void)[] = [];

  holdBefore(n: number): { reached: Promise<void>; release: () => void } {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const reached = new Promise<void>((resolve) => (this.hold = { remaining: n, reached: resolve, released }));
    this.releases.push(release);
    return { reached, release };
  }

  /** Lets every held request go (after a failed test, so the runner and the app can stop). */
  releaseAll(): void {
    this.hold = undefined;
    for (const release of this.releases.splice(0)) release();
  }

  override async respond(endpoint: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const hold = this.hold;
    if (hold !== undefined && --hold.remaining === 0) {
      this.hold = undefined;
      hold.reached();
      await hold.released;
    }
    return super.respond(endpoint, body);
  }
}

interface ChatRequest {
  custom_id: string;
  method: string;
  url: string;
  body: { model: string; messages: { role: string; content: string }[] };
}

function chatRequests(count: number, prefix: string, padding = ''): ChatRequest[] {
  return Array.from({ length: count }, (_, i) => ({
    custom_id: `${prefix}-${i + 1}`,
    method: 'POST',
    url: '/v1/chat/completions',
    body: { model: 'echo-1', messages: [{ role: 'user', content: `say ${prefix} ${i + 1}${padding}` }] },
  }));
}

const jsonl = (lines: unknown[]) => lines.map((line) => (typeof line === 'string' ? line : JSON.stringify(line))).join('\n') + '\n';

describe('examples/batch-platform: a host app with FilesModule and a Batches API, through the openai client', () => {
  let db: TestDatabase;
  let bucket: TestBucket;
  let app: INestApplication;
  let origin: string;
  let files: FilesService;
  let runner: BatchRunner;
  let sweeper: ExpirySweeper;
  const clock = new TestClock();
  const expired: FileExpiredEvent[] = [];

  beforeAll(async () => {
    [db, bucket] = await Promise.all([createTestDatabase(), createTestBucket()]);
    const config: PlatformConfig = {
      port: 0,
      databaseUrl: db.url,
      storage: bucket.settings,
      users: Object.fromEntries(USERS.map((user) => [tokenOf(user), ownerOf(user)])),
      quotaBytesPerUser: QUOTA_BYTES,
      batches: { outputExpiresAfterSeconds: OUTPUT_LIFETIME_SECONDS, requestLatencyMs: 0 },
      // The test runs the expiry sweep itself, after moving the clock.
      filesJobs: false,
    };
    const moduleRef = await Test.createTestingModule({ imports: [PlatformModule.forRoot(config)] })
      .overrideProvider(Clock)
      .useValue(clock)
      .overrideProvider(EchoModel)
      .useValue(new HeldModel(config))
      .compile();
    app = moduleRef.createNestApplication({ logger: ['error'] });
    await app.listen(0, '127.0.0.1');
    origin = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
    files = app.get(FilesService);
    runner = app.get(BatchRunner);
    sweeper = app.get(ExpirySweeper);
    files.on('file.expired', (event) => void expired.push(event));
  });
  afterEach(() => model().releaseAll());
  afterAll(async () => {
    await app?.close();
    await db?.drop();
    await bucket?.drop();
  });

  const model = () => app.get(EchoModel) as HeldModel;
  const client = (user: User | { token: string }) =>
    new OpenAI({ apiKey: typeof user === 'string' ? tokenOf(user) : user.token, baseURL: `${origin}/v1`, maxRetries: 0 });

  async function upload(user: User, lines: unknown[], expiresAfterSeconds?: number): Promise<OpenAI.FileObject> {
    return client(user).files.create({
      file: await toFile(Buffer.from(jsonl(lines)), 'requests.jsonl'),
      purpose: 'batch',
      ...(expiresAfterSeconds ? { expires_after: { anchor: 'created_at' as const, seconds: expiresAfterSeconds } } : {}),
    });
  }

  const createBatch = (user: User, input: OpenAI.FileObject) =>
    client(user).batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' });

  async function until(user: User, id: string, status: OpenAI.Batch['status']): Promise<OpenAI.Batch> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const batch = await client(user).batches.retrieve(id);
      if (batch.status === status) return batch;
      if (['completed', 'failed'].includes(batch.status) || Date.now() > deadline) {
        throw new Error(`batch ${id} is ${batch.status}, expected ${status}: ${JSON.stringify(batch.errors)}`);
      }
      await sleep(25);
    }
  }

  async function runBatch(user: User, requests: ChatRequest[]) {
    const input = await upload(user, requests);
    const batch = await until(user, (await createBatch(user, input)).id, 'completed');
    const output = await client(user).files.retrieve(batch.output_file_id!);
    return { input, batch, output };
  }

  const outputIds = async (user: User) => (await client(user).files.list({ purpose: 'batch-output' })).data.map((f) => f.id);
  const outputLines = async (user: User, fileId: string) =>
    (await (await client(user).files.content(fileId)).text())
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));

  it("runs a batch: one output line per input line, written as the same user's batch-output file that counts toward their quota", async () => {
    const requests = chatRequests(3, 'ana');
    const input = await upload('ana', requests);
    const created = await createBatch('ana', input);
    expect(created).toMatchObject({
      id: expect.stringMatching(/^batch_[0-9a-f]{24}$/),
      object: 'batch',
      endpoint: '/v1/chat/completions',
      input_file_id: input.id,
      completion_window: '24h',
      status: 'validating',
      output_file_id: null,
    });

    const batch = await until('ana', created.id, 'completed');
    expect(batch.request_counts).toEqual({ total: 3, completed: 3, failed: 0 });
    expect(batch).toMatchObject({ errors: null, error_file_id: null, output_file_id: expect.stringMatching(/^file_/) });
    expect(batch.in_progress_at).toEqual(expect.any(Number));
    expect(batch.completed_at).toBeGreaterThanOrEqual(batch.finalizing_at!);

    const lines = await outputLines('ana', batch.output_file_id!);
    expect(lines.map((line) => line.custom_id)).toEqual(requests.map((r) => r.custom_id));
    for (const [i, line] of lines.entries()) {
      expect(line).toMatchObject({
        id: expect.stringMatching(/^batch_req_/),
        response: { status_code: 200, request_id: expect.stringMatching(/^req_/) },
        error: null,
      });
      expect(line.response.body.choices[0].message).toEqual({ role: 'assistant', content: requests[i].body.messages[0].content });
    }

    const output = await client('ana').files.retrieve(batch.output_file_id!);
    expect(output).toMatchObject({ purpose: 'batch-output', filename: `${batch.id}_output.jsonl`, status: 'processed' });
    expect(output.expires_at).toBe(output.created_at + OUTPUT_LIFETIME_SECONDS);
    expect(await outputIds('ana')).toEqual([output.id]);
    expect((await client('ana').files.list({ purpose: 'batch' })).data.map((f) => f.id)).toEqual([input.id]);

    expect(await files.usage(ownerOf('ana'))).toEqual({ usedBytes: input.bytes + output.bytes, quotaBytes: QUOTA_BYTES });
  });

  it("keeps users apart: another platform user gets 404 for the input, the output and the batch, and sees none of them", async () => {
    const { input, batch, output } = await runBatch('ana', chatRequests(2, 'private'));
    const ben = client('ben');
    for (const attempt of [
      () => ben.files.retrieve(input.id),
      () => ben.files.content(input.id),
      () => ben.files.delete(input.id),
      () => ben.files.retrieve(output.id),
      () => ben.files.content(output.id),
      () => ben.files.delete(output.id),
      () => ben.batches.retrieve(batch.id),
      () => ben.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
    ]) {
      await expect(attempt()).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    }
    expect((await ben.files.list()).data).toEqual([]);
    // ben's attempts changed nothing for ana.
    expect(await client('ana').files.retrieve(output.id)).toEqual(output);
    expect((await client('ana').batches.retrieve(batch.id)).status).toBe('completed');
  });

  it('answers 401 on files and batches alike to a token the platform does not know', async () => {
    const stranger = client({ token: 'not-a-platform-token' });
    for (const attempt of [() => stranger.files.list(), () => stranger.batches.retrieve('batch_0')]) {
      await expect(attempt()).rejects.toMatchObject({ status: 401, code: 'invalid_api_key' });
    }
  });

  it('fails a batch whose input is deleted while it runs, and keeps no partial output', async () => {
    const keysBefore = await listKeys(bucket.client, bucket.settings.bucket);
    const held = model().holdBefore(2);
    const input = await upload('del', chatRequests(3, 'del'));
    const { id } = await createBatch('del', input);
    await held.reached;
    expect(await client('del').batches.retrieve(id)).toMatchObject({
      status: 'in_progress',
      request_counts: { total: 3, completed: 1, failed: 0 },
    });

    await client('del').files.delete(input.id);
    // file.deleted reached the runner before the delete answered.
    const failed = await client('del').batches.retrieve(id);
    expect(failed).toMatchObject({ status: 'failed', output_file_id: null, failed_at: expect.any(Number) });
    expect(failed.errors!.data).toEqual([
      { code: 'input_file_deleted', message: expect.stringContaining(input.id), param: 'input_file_id', line: null },
    ]);

    held.release();
    await runner.idle();
    expect((await client('del').batches.retrieve(id)).status).toBe('failed');
    expect(await outputIds('del')).toEqual([]);
    expect(await files.usage(ownerOf('del'))).toMatchObject({ usedBytes: 0 });
    expect(await listKeys(bucket.client, bucket.settings.bucket)).toEqual(keysBefore);
    expect(await listMultipartUploads(bucket.client, bucket.settings.bucket)).toEqual([]);
  });

  it('fails a batch whose input expires while it runs (file.expired from the expiry sweep)', async () => {
    const held = model().holdBefore(2);
    const input = await upload('exp', chatRequests(3, 'exp'), HOUR_SECONDS);
    const { id } = await createBatch('exp', input);
    await held.reached;

    clock.advance((HOUR_SECONDS + 1) * 1000);
    expect(await sweeper.sweep()).toMatchObject({ ran: true, expired: 1, failed: 0 });
    expect(expired).toContainEqual({ ownerId: ownerOf('exp'), fileId: input.id });
    const failed = await client('exp').batches.retrieve(id);
    expect(failed).toMatchObject({ status: 'failed', output_file_id: null });
    expect(failed.errors!.data!.map((e) => e.code)).toEqual(['input_file_expired']);

    held.release();
    await runner.idle();
    expect(await outputIds('exp')).toEqual([]);
    expect(await files.usage(ownerOf('exp'))).toMatchObject({ usedBytes: 0 });
  });

  it('fails a batch with invalid lines while validating, naming each bad line, and writes no output', async () => {
    const [first, second] = chatRequests(2, 'val');
    const input = await upload('val', [
      first,
      '{"custom_id": "broken"',
      { ...second, url: '/v1/embeddings' },
      '',
      first,
      { ...second, method: 'GET' },
      second,
    ]);
    const failed = await until('val', (await createBatch('val', input)).id, 'failed');
    expect(failed.errors!.data!.map(({ code, line }) => ({ code, line }))).toEqual([
      { code: 'invalid_json_line', line: 2 },
      { code: 'mismatched_endpoint', line: 3 },
      { code: 'duplicate_custom_id', line: 5 },
      { code: 'invalid_method', line: 6 },
    ]);
    expect(failed).toMatchObject({ output_file_id: null, in_progress_at: null });
    expect(await outputIds('val')).toEqual([]);
  });

  it("writes the output even when it takes the user past their quota, which then refuses the user's next upload", async () => {
    // ~60 kB of requests whose answers are larger still: together well over the 100 kB quota.
    const { input, output } = await runBatch('quo', chatRequests(250, 'quo', ' '.repeat(120)));
    expect(input.bytes).toBeLessThan(QUOTA_BYTES);
    const usage = await files.usage(ownerOf('quo'));
    expect(usage.usedBytes).toBe(input.bytes + output.bytes);
    expect(usage.usedBytes).toBeGreaterThan(QUOTA_BYTES);
    expect(await outputLines('quo', output.id)).toHaveLength(250);

    await expect(upload('quo', chatRequests(1, 'more'))).rejects.toMatchObject({ status: 400, code: 'quota_exceeded' });
  });

  it('lets the output expire: off the API, the listing and the quota, its bytes removed, file.expired emitted', async () => {
    const { input, batch, output } = await runBatch('old', chatRequests(2, 'old'));
    expect(await files.usage(ownerOf('old'))).toMatchObject({ usedBytes: input.bytes + output.bytes });

    clock.advance((OUTPUT_LIFETIME_SECONDS + 1) * 1000);
    expect((await sweeper.sweep()).expired).toBeGreaterThanOrEqual(1);

    expect(expired).toContainEqual({ ownerId: ownerOf('old'), fileId: output.id });
    await expect(client('old').files.retrieve(output.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(client('old').files.content(output.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect(await outputIds('old')).toEqual([]);
    expect(await files.usage(ownerOf('old'))).toMatchObject({ usedBytes: input.bytes });
    expect(await listKeys(bucket.client, bucket.settings.bucket)).not.toContain(`files/${output.id}`);
    // The input (30 days) is still there, and the batch still names its (now expired) output.
    expect(await client('old').files.retrieve(input.id)).toEqual(input);
    expect((await client('old').batches.retrieve(batch.id)).output_file_id).toBe(output.id);
  });
});
