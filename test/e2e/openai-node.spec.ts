import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { createReadStream } from 'node:fs';
import OpenAI, { APIError, toFile, type Uploadable } from 'openai';
import { startTestApp, type TestApp } from '../support/app';
import { MiB, sha256, tempDir, writeRandomFile } from '../support/e2e/content';
import { BASE_PATHS, e2eApiKeysEnv, openaiFor, type E2eOwner } from '../support/e2e/owners';
import { expectNoResidue, residueOf } from '../support/e2e/residue';
import { recordRequests, recordS3Calls } from '../support/e2e/wire';

// jest.config.js sets testTimeout per project, where Jest ignores it (it is a global option).
jest.setTimeout(60_000);

/** A small in-memory upload (the client sends it with a Content-Length). */
function smallFile(name = 'requests.jsonl', content: Buffer = Buffer.from(`{"custom_id":"${name}"}\n`)) {
  return { content, upload: () => toFile(content, name, { type: 'application/jsonl' }) };
}

async function uploadSmall(client: OpenAI, name?: string) {
  const file = smallFile(name);
  return client.files.create({ file: await file.upload(), purpose: 'batch' });
}

async function bytesOf(response: Response): Promise<Buffer> {
  return Buffer.from(await response.arrayBuffer());
}

function keyOf(id: string): string {
  return `files/${id}`;
}

/** The rejection of `promise`, which must reject. */
async function refusal(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => {
      throw new Error(`expected a refusal, got ${JSON.stringify(value)}`);
    },
    (error: unknown) => error,
  );
}

describe('files-api through the official openai Node client (S3 storage)', () => {
  let t: TestApp;
  let disk: Awaited<ReturnType<typeof tempDir>>;

  beforeAll(async () => {
    [t, disk] = await Promise.all([startTestApp({ storage: 's3', env: e2eApiKeysEnv() }), tempDir()]);
  });
  afterAll(async () => {
    await t?.close();
    await disk?.remove();
  });

  it('streams a 12 MiB file from disk without Content-Length into a multipart S3 object and serves it back byte for byte', async () => {
    const source = await writeRandomFile(disk.dir, 'big-batch.jsonl', 12 * MiB);
    const client = openaiFor(t, 'alice');
    const wire = recordRequests(t);
    const s3 = recordS3Calls();
    let created: OpenAI.FileObject;
    try {
      created = await client.files.create({
        file: createReadStream(source.path),
        purpose: 'batch',
        expires_after: { anchor: 'created_at', seconds: 3600 },
      });
    } finally {
      wire.stop();
      s3.stop();
    }

    // What arrived on the wire: a chunked body of unknown length, as a streaming client sends it.
    const upload = wire.seen.filter((r) => r.method === 'POST');
    expect(upload).toHaveLength(1);
    expect(upload[0].url).toBe('/v1/openai/files');
    expect(upload[0].headers['content-length']).toBeUndefined();
    expect(upload[0].headers['transfer-encoding']).toBe('chunked');
    expect(upload[0].headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);

    expect(created).toEqual({
      id: expect.stringMatching(/^file_[a-z0-9]{26}$/),
      object: 'file',
      bytes: source.bytes,
      created_at: expect.any(Number),
      expires_at: created.created_at + 3600,
      filename: source.name,
      purpose: 'batch',
      status: 'processed',
    });
    expect(Math.abs(created.created_at - Date.now() / 1000)).toBeLessThan(120);

    // Bigger than one 8 MiB part, so stored with a multipart upload of two parts, now complete.
    expect(s3.calls(keyOf(created.id)).map((c) => c.command)).toEqual([
      'CreateMultipartUploadCommand',
      'UploadPartCommand',
      'UploadPartCommand',
      'CompleteMultipartUploadCommand',
    ]);
    const { client: bucket, settings } = t.bucket!;
    const head = await bucket.send(new HeadObjectCommand({ Bucket: settings.bucket, Key: keyOf(created.id) }));
    expect(head.ContentLength).toBe(source.bytes);
    expect((await residueOf(t)).openUploads).toEqual([]);

    expect(await client.files.retrieve(created.id)).toEqual(created);

    const response = await client.files.content(created.id);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/octet-stream');
    expect(response.headers.get('content-length')).toBe(String(source.bytes));
    expect(response.headers.get('content-disposition')).toMatch(/^attachment;.*big-batch\.jsonl/);
    const body = await bytesOf(response);
    expect(body.length).toBe(source.bytes);
    expect(sha256(body)).toBe(source.sha256);

    expect(await client.files.delete(created.id)).toEqual({ id: created.id, object: 'file', deleted: true });
    await expect(client.files.retrieve(created.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect((await residueOf(t)).keys).not.toContain(keyOf(created.id));
  });

  it.each(BASE_PATHS)('creates, retrieves, downloads, lists and deletes a file with base URL %s', async (base) => {
    const client = openaiFor(t, 'bob', { base });
    const file = smallFile(`lifecycle${base.replace(/\//g, '-')}.jsonl`);

    const created = await client.files.create({
      file: await file.upload(),
      purpose: 'batch',
      expires_after: { anchor: 'created_at', seconds: 7200 },
    });
    expect(created).toMatchObject({ object: 'file', bytes: file.content.length, purpose: 'batch', status: 'processed' });
    expect(created.expires_at! - created.created_at).toBe(7200);

    expect(await client.files.retrieve(created.id)).toEqual(created);
    expect(await bytesOf(await client.files.content(created.id))).toEqual(file.content);
    const listed = await client.files.list({ purpose: 'batch' });
    expect(listed.data.map((f) => f.id)).toContain(created.id);

    expect(await client.files.delete(created.id)).toEqual({ id: created.id, object: 'file', deleted: true });
    await expect(client.files.retrieve(created.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(client.files.content(created.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(client.files.delete(created.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const after = await client.files.list();
    expect(after.data.map((f) => f.id)).not.toContain(created.id);
  });

  it('uses the same files whichever base URL a client is given', async () => {
    const deepinfra = openaiFor(t, 'bob', { base: '/v1/openai' });
    const plain = openaiFor(t, 'bob', { base: '/v1' });
    const created = await uploadSmall(deepinfra, 'either-base.jsonl');
    expect(await plain.files.retrieve(created.id)).toEqual(created);
    await plain.files.delete(created.id);
    await expect(deepinfra.files.retrieve(created.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('auto-paginates every file of an owner, newest first, in pages of the requested size with no duplicates', async () => {
    const client = openaiFor(t, 'pager');
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await uploadSmall(client, `page-${i}.jsonl`)).id);

    const wire = recordRequests(t);
    const desc: OpenAI.FileObject[] = [];
    try {
      for await (const file of client.files.list({ limit: 2 })) desc.push(file);
    } finally {
      wire.stop();
    }
    expect(desc.map((f) => f.id)).toEqual([...ids].reverse());
    expect(new Set(desc.map((f) => f.id)).size).toBe(7);
    expect(desc.map((f) => f.created_at)).toEqual([...desc.map((f) => f.created_at)].sort((a, b) => b - a));
    // 2 + 2 + 2 + 1: an exact has_more means no fifth, empty page is fetched.
    const pages = wire.seen
      .filter((r) => r.method === 'GET')
      .map((r) => new URL(r.url, t.origin).searchParams)
      .map((query) => ({ limit: query.get('limit'), after: query.get('after') }));
    expect(pages).toEqual([null, ids[5], ids[3], ids[1]].map((after) => ({ limit: '2', after })));

    const asc: string[] = [];
    for await (const file of client.files.list({ limit: 3, order: 'asc' })) asc.push(file.id);
    expect(asc).toEqual(ids);
  });

  it('keeps each owner to its own files through the client', async () => {
    const alice = openaiFor(t, 'alice');
    const carol = openaiFor(t, 'carol', { base: '/v1' });
    const secret = await uploadSmall(alice, 'alice-only.jsonl');

    await expect(carol.files.retrieve(secret.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(carol.files.content(secret.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(carol.files.delete(secret.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const carolSees: string[] = [];
    for await (const file of carol.files.list()) carolSees.push(file.id);
    expect(carolSees).not.toContain(secret.id);

    // Carol's attempts changed nothing for alice.
    expect(await alice.files.retrieve(secret.id)).toEqual(secret);
    await alice.files.delete(secret.id);
  });

  describe('errors as SDK exceptions', () => {
    it('raises AuthenticationError (401, invalid_api_key) for an unknown key and stores nothing', async () => {
      const stranger = openaiFor(t, { apiKey: 'sk-not-a-key-of-this-service' });
      const error = await expectNoResidue<APIError>(t, async () =>
        stranger.files.create({ file: await smallFile().upload(), purpose: 'batch' }),
      );
      expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
      expect(error).toMatchObject({ status: 401, code: 'invalid_api_key', type: 'invalid_request_error' });

      for (const call of [() => stranger.files.list(), () => stranger.files.retrieve('file_00000000000000000000000000')]) {
        const refused = await refusal(call());
        expect(refused).toBeInstanceOf(OpenAI.AuthenticationError);
        expect(refused).toMatchObject({ status: 401, code: 'invalid_api_key' });
      }
    });

    it('raises NotFoundError naming the id for a file that never existed', async () => {
      const client = openaiFor(t, 'alice');
      const unknown = 'file_01jz0000000000000000000000';
      for (const call of [
        () => client.files.retrieve(unknown),
        () => client.files.content(unknown),
        () => client.files.delete(unknown),
      ]) {
        const error = await refusal(call());
        expect(error).toBeInstanceOf(OpenAI.NotFoundError);
        expect(error).toMatchObject({ status: 404, type: 'invalid_request_error' });
        expect((error as Error).message).toContain(unknown);
      }
    });

    it.each<[string, (file: Uploadable) => OpenAI.FileCreateParams]>([
      ['purpose before the file', (file) => ({ purpose: 'fine-tune', file })],
      ['purpose after the file', (file) => ({ file, purpose: 'fine-tune' })],
    ])('raises BadRequestError (unsupported_purpose, param purpose) for fine-tune, %s, and stores nothing', async (_, params) => {
      const client = openaiFor(t, 'alice');
      const error = await expectNoResidue<APIError>(t, async () =>
        client.files.create(params(await smallFile('tune.jsonl').upload())),
      );
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect(error).toMatchObject({ status: 400, code: 'unsupported_purpose', param: 'purpose' });
      expect(error.message).toMatch(/not yet supported/i);
    });

    it('raises BadRequestError (param purpose) for a platform-only purpose and stores nothing', async () => {
      const client = openaiFor(t, 'alice');
      const error = await expectNoResidue<APIError>(t, async () =>
        client.files.create({ file: await smallFile().upload(), purpose: 'batch-output' as OpenAI.FilePurpose }),
      );
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect(error).toMatchObject({ status: 400, param: 'purpose' });
    });

    it('raises BadRequestError (param expires_after.seconds) for an expiry out of range and stores nothing', async () => {
      const client = openaiFor(t, 'alice');
      const error = await expectNoResidue<APIError>(t, async () =>
        client.files.create({
          file: await smallFile().upload(),
          purpose: 'batch',
          expires_after: { anchor: 'created_at', seconds: 60 },
        }),
      );
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect(error).toMatchObject({ status: 400, param: 'expires_after.seconds' });
    });
  });
});

describe('files-api limits through the official openai Node client (S3 storage)', () => {
  const BATCH_LIMIT = 9 * MiB;
  const QUOTA = 10 * MiB;
  let t: TestApp;
  let disk: Awaited<ReturnType<typeof tempDir>>;

  beforeAll(async () => {
    [t, disk] = await Promise.all([
      startTestApp({
        storage: 's3',
        env: {
          ...e2eApiKeysEnv(),
          FILES_MAX_BATCH_FILE_BYTES: String(BATCH_LIMIT),
          FILES_QUOTA_BYTES_PER_OWNER: String(QUOTA),
        },
      }),
      tempDir(),
    ]);
  });
  afterAll(async () => {
    await t?.close();
    await disk?.remove();
  });

  const streamed = async (owner: E2eOwner, name: string, bytes: number) => {
    const source = await writeRandomFile(disk.dir, name, bytes);
    return { source, create: () => openaiFor(t, owner).files.create({ file: createReadStream(source.path), purpose: 'batch' }) };
  };

  it('raises APIError 413 file_too_large for a streamed file over the batch limit, refused once its S3 multipart upload had begun, and leaves no object or open multipart upload', async () => {
    // 12 MiB against a 9 MiB limit: the first 8 MiB part is uploaded before the limit trips.
    const { create } = await streamed('sizer', 'too-big.jsonl', 12 * MiB);
    const s3 = recordS3Calls();
    let error: APIError;
    try {
      error = await expectNoResidue<APIError>(t, create);
    } finally {
      s3.stop();
    }
    // The refusal came after a multipart upload had begun, so it is the abort path that was tested.
    expect(s3.calls().map((c) => c.command)).toEqual(
      expect.arrayContaining(['CreateMultipartUploadCommand', 'UploadPartCommand']),
    );
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(error).not.toBeInstanceOf(OpenAI.BadRequestError);
    expect(error).toMatchObject({ status: 413, code: 'file_too_large', type: 'invalid_request_error' });
  });

  it('raises BadRequestError quota_exceeded when an upload would pass the owner quota, stores nothing, and accepts it once space is freed', async () => {
    const first = await streamed('quota', 'first.jsonl', 6 * MiB);
    const second = await streamed('quota', 'second.jsonl', 6 * MiB);
    const kept = await first.create();

    const error = await expectNoResidue<APIError>(t, second.create);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(error).toMatchObject({ status: 400, code: 'quota_exceeded' });
    expect((await residueOf(t)).usage.quota).toBe(first.source.bytes);

    // Deleting releases the quota at once.
    await openaiFor(t, 'quota').files.delete(kept.id);
    const accepted = await second.create();
    expect(accepted.bytes).toBe(second.source.bytes);
    expect((await residueOf(t)).usage.quota).toBe(second.source.bytes);
  });
});
