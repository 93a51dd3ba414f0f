import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { StorageUnavailableError } from '../../src/files/files.errors';
import { S3FileStorage, type S3StorageOptions } from '../../src/files/storage/s3-file-storage';
import { createTestBucket, listKeys, listMultipartUploads, type TestBucket } from '../support/backends';
import { MiB, randomContent, readAll, sha256, streamOf } from '../support/streams';
import { LARGE_BYTES, storageContract, type StorageHarness } from './storage-contract';

const PART_BYTES = 5 * MiB;

function s3Options(bucket: TestBucket, overrides: Partial<S3StorageOptions> = {}): S3StorageOptions {
  return { ...bucket.settings, partSizeBytes: PART_BYTES, queueSize: 2, ...overrides };
}

/** Nothing listens on port 9 (discard); connections are refused at once. */
const DEAD_ENDPOINT = { endpoint: 'http://127.0.0.1:9', connectTimeoutMs: 500, requestTimeoutMs: 1000 };

async function s3Harness(): Promise<StorageHarness & { bucket: TestBucket }> {
  const bucket = await createTestBucket();
  const storage = new S3FileStorage(s3Options(bucket));
  const { client } = bucket;
  const Bucket = bucket.settings.bucket;
  return {
    bucket,
    storage,
    openWrites: async () => (await listMultipartUploads(client, Bucket)).map((u) => u.key),
    startIncompleteUpload: async (key) => {
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key: key }));
      return {
        release: async () => {
          await client.send(new AbortMultipartUploadCommand({ Bucket, Key: key, UploadId })).catch(() => undefined);
        },
      };
    },
    unreachable: () => new S3FileStorage(s3Options(bucket, DEAD_ENDPOINT)),
    close: async () => {
      storage.close();
      await bucket.drop();
    },
  };
}

interface RecordedDelete {
  method?: string;
  url?: string;
  keys: string[];
  contentMd5?: string;
  bodyMd5: string;
}

/**
 * A stand-in S3 server that answers DeleteObjects as the test tells it per request, and records
 * every request: what a real server cannot be made to do on demand (refuse some keys of a batch).
 */
async function deleteObjectsStub(answer: (keys: string[]) => { status: number; body: string }) {
  const requests: RecordedDelete[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const keys = [...body.toString().matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]);
      const contentMd5 = req.headers['content-md5'] as string | undefined;
      requests.push({ method: req.method, url: req.url, keys, contentMd5, bodyMd5: createHash('md5').update(body).digest('base64') });
      const { status, body: out } = answer(keys);
      res.writeHead(status, { 'content-type': 'application/xml' }).end(out);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const storage = new S3FileStorage({
    bucket: 'stub-bucket',
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    accessKeyId: 'stub',
    secretAccessKey: 'stub-secret',
    connectTimeoutMs: 1000,
    requestTimeoutMs: 5000,
  });
  return {
    storage,
    requests,
    close: async () => {
      storage.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const deleteResult = (errors: { key: string; code: string }[]) =>
  '<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
  errors.map((e) => `<Error><Key>${e.key}</Key><Code>${e.code}</Code><Message>${e.code} here</Message></Error>`).join('') +
  '</DeleteResult>';

describe(S3FileStorage.name, () => {
  describe('storage contract', () => {
    storageContract(s3Harness);
  });

  describe('against S3', () => {
    let h: Awaited<ReturnType<typeof s3Harness>>;
    beforeAll(async () => {
      h = await s3Harness();
    });
    afterAll(async () => h?.close());

    it('stores a stream of unknown length as a multipart upload of several parts', async () => {
      const key = 'files/file_multipart';
      const content = randomContent(LARGE_BYTES);
      await h.storage.put(key, streamOf(content));
      const head = await h.bucket.client.send(new HeadObjectCommand({ Bucket: h.bucket.settings.bucket, Key: key }));
      // A multipart object's ETag is "<md5 of part md5s>-<part count>".
      expect(head.ETag).toMatch(/-3"?$/);
      expect(head.ContentLength).toBe(content.length);
      expect(sha256(await readAll((await h.storage.openRead(key))!.body))).toBe(sha256(content));
      expect(await h.openWrites()).toEqual([]);
    });

    it('translates every operation against an unreachable endpoint into StorageUnavailableError', async () => {
      const down = h.unreachable() as S3FileStorage;
      const key = 'files/file_down';
      const started = Date.now();
      await expect(down.ping()).rejects.toBeInstanceOf(StorageUnavailableError);
      await expect(down.head(key)).rejects.toBeInstanceOf(StorageUnavailableError);
      await expect(down.openRead(key)).rejects.toBeInstanceOf(StorageUnavailableError);
      await expect(down.delete(key)).rejects.toBeInstanceOf(StorageUnavailableError);
      // A batch delete never rejects for the backend: every key comes back failed.
      const { failed } = await down.deleteMany([key, `${key}_2`]);
      expect(failed.map((f) => f.key).sort()).toEqual([key, `${key}_2`]);
      for (const f of failed) expect(f.error).toBeInstanceOf(StorageUnavailableError);
      await expect(down.put(key, streamOf(randomContent(10)))).rejects.toBeInstanceOf(StorageUnavailableError);
      await expect(down.list('files/')[Symbol.asyncIterator]().next()).rejects.toBeInstanceOf(StorageUnavailableError);
      // Refused connections must fail fast (a few retries), not hang a readiness probe.
      expect(Date.now() - started).toBeLessThan(20_000);
      down.close();
    });

    it('reports a missing bucket as unavailable storage, never as a missing file', async () => {
      const missing = new S3FileStorage(s3Options(h.bucket, { bucket: `${h.bucket.settings.bucket}-gone` }));
      try {
        await expect(missing.ping()).rejects.toBeInstanceOf(StorageUnavailableError);
        await expect(missing.head('files/file_x')).rejects.toBeInstanceOf(StorageUnavailableError);
        await expect(missing.openRead('files/file_x')).rejects.toBeInstanceOf(StorageUnavailableError);
        await expect(missing.delete('files/file_x')).rejects.toBeInstanceOf(StorageUnavailableError);
        expect((await missing.deleteMany(['files/file_x'])).failed).toEqual([
          { key: 'files/file_x', error: expect.any(StorageUnavailableError) },
        ]);
        await expect(missing.put('files/file_x', streamOf(randomContent(10)))).rejects.toBeInstanceOf(
          StorageUnavailableError,
        );
      } finally {
        missing.close();
      }
    });

    it('deletes a batch of stored objects with DeleteObjects, leaving other objects alone', async () => {
      const keys = Array.from({ length: 40 }, (_, i) => `files/file_batch${i}`);
      for (const key of keys) await h.storage.put(key, streamOf(randomContent(8)));
      await h.storage.put('files/file_batchkept', streamOf(randomContent(8)));
      expect(await h.storage.deleteMany(keys)).toEqual({ failed: [] });
      const left = await listKeys(h.bucket.client, h.bucket.settings.bucket);
      for (const key of keys) expect(left).not.toContain(key);
      expect(left).toContain('files/file_batchkept');
    });

    it('fails ping with StorageUnavailableError when the credentials are wrong', async () => {
      const wrong = new S3FileStorage(s3Options(h.bucket, { secretAccessKey: 'not-the-secret' }));
      try {
        await expect(wrong.ping()).rejects.toBeInstanceOf(StorageUnavailableError);
      } finally {
        wrong.close();
      }
    });
  });

  describe('deleteMany against a stub S3 server', () => {
    it('sends at most 1000 keys per DeleteObjects, each key once, with a correct Content-MD5', async () => {
      const stub = await deleteObjectsStub(() => ({ status: 200, body: deleteResult([]) }));
      try {
        const keys = Array.from({ length: 9001 }, (_, i) => `files/file_${i}`);
        expect(await stub.storage.deleteMany(keys)).toEqual({ failed: [] });
        expect(stub.requests.length).toBeGreaterThanOrEqual(10);
        for (const request of stub.requests) {
          expect(request.method).toBe('POST');
          expect(request.url).toMatch(/^\/stub-bucket\/?\?(.*&)?delete/);
          expect(request.keys.length).toBeLessThanOrEqual(1000);
          expect(request.contentMd5).toBe(request.bodyMd5);
        }
        expect(stub.requests.flatMap((r) => r.keys).sort()).toEqual([...keys].sort());
      } finally {
        await stub.close();
      }
    });

    it('reports only the keys the server refused; a missing key is no failure', async () => {
      const stub = await deleteObjectsStub((keys) => ({
        status: 200,
        body: deleteResult(
          keys.filter((k) => k.includes('refused') || k.includes('gone')).map((key) => ({ key, code: key.includes('gone') ? 'NoSuchKey' : 'AccessDenied' })),
        ),
      }));
      try {
        const keys = ['files/file_a', 'files/file_refused', 'files/file_gone', 'files/file_b', 'files/file_refused2'];
        const { failed } = await stub.storage.deleteMany(keys);
        expect(failed.map((f) => f.key).sort()).toEqual(['files/file_refused', 'files/file_refused2']);
        for (const f of failed) {
          expect(f.error).toBeInstanceOf(StorageUnavailableError);
          expect(f.error.message).toMatch(/AccessDenied/);
        }
      } finally {
        await stub.close();
      }
    });

    it('fails every key of a request the server refuses as a whole, and only those', async () => {
      const stub = await deleteObjectsStub((keys) =>
        keys.includes('files/file_poison')
          ? { status: 403, body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>no</Message></Error>' }
          : { status: 200, body: deleteResult([]) },
      );
      try {
        const keys = Array.from({ length: 16 }, (_, i) => (i === 5 ? 'files/file_poison' : `files/file_${i}`));
        const { failed } = await stub.storage.deleteMany(keys);
        const refused = stub.requests.find((r) => r.keys.includes('files/file_poison'))!;
        expect(refused.keys.length).toBeLessThan(keys.length);
        expect(failed.map((f) => f.key).sort()).toEqual([...refused.keys].sort());
        for (const f of failed) expect(f.error).toBeInstanceOf(StorageUnavailableError);
      } finally {
        await stub.close();
      }
    });

    it('sends nothing for an empty list', async () => {
      const stub = await deleteObjectsStub(() => ({ status: 200, body: deleteResult([]) }));
      try {
        expect(await stub.storage.deleteMany([])).toEqual({ failed: [] });
        expect(stub.requests).toEqual([]);
      } finally {
        await stub.close();
      }
    });
  });
});
