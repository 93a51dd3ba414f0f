import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
} from '@aws-sdk/client-s3';
import { StorageUnavailableError } from '../../src/files/files.errors';
import { S3FileStorage, type S3StorageOptions } from '../../src/files/storage/s3-file-storage';
import { createTestBucket, listMultipartUploads, type TestBucket } from '../support/backends';
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
        await expect(missing.put('files/file_x', streamOf(randomContent(10)))).rejects.toBeInstanceOf(
          StorageUnavailableError,
        );
      } finally {
        missing.close();
      }
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
});
