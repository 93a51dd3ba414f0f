import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { PrefixedFileStorage } from '../../src/files/storage/prefixed-file-storage';
import { S3FileStorage } from '../../src/files/storage/s3-file-storage';
import { storageKeyFor } from '../../src/files/storage/storage-key';
import { newFileId } from '../../src/files/file-id';
import { createTestBucket, listKeys, listMultipartUploads, type TestBucket } from '../support/backends';
import { streamOf } from '../support/streams';
import { storageContract, type StorageHarness } from './storage-contract';

const PREFIX = 'tenant-a/';
/** Objects of someone else in the same bucket: the prefixed adapter must never see or touch them. */
const FOREIGN_KEYS = ['tenant-b/files/file_foreign', 'files/file_unprefixed'];

async function prefixedHarness(): Promise<StorageHarness & { bucket: TestBucket }> {
  const bucket = await createTestBucket();
  const { client } = bucket;
  const Bucket = bucket.settings.bucket;
  for (const Key of FOREIGN_KEYS) await client.send(new PutObjectCommand({ Bucket, Key, Body: 'theirs' }));
  const inner = new S3FileStorage({ ...bucket.settings, partSizeBytes: 5 * 1024 * 1024, queueSize: 2 });
  const storage = new PrefixedFileStorage(inner, PREFIX);
  return {
    bucket,
    storage,
    openWrites: async () =>
      (await listMultipartUploads(client, Bucket)).filter((u) => u.key.startsWith(PREFIX)).map((u) => u.key.slice(PREFIX.length)),
    startIncompleteUpload: async (key) => {
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key: PREFIX + key }));
      return {
        release: async () => {
          await client.send(new AbortMultipartUploadCommand({ Bucket, Key: PREFIX + key, UploadId })).catch(() => undefined);
        },
      };
    },
    unreachable: () =>
      new PrefixedFileStorage(
        new S3FileStorage({ ...bucket.settings, endpoint: 'http://127.0.0.1:9', connectTimeoutMs: 500, requestTimeoutMs: 1000, partSizeBytes: 5 * 1024 * 1024, queueSize: 2 }),
        PREFIX,
      ),
    close: async () => {
      // The contract never reaches outside the prefix: the other tenants' objects are intact.
      const keys = await listKeys(client, Bucket);
      for (const foreign of FOREIGN_KEYS) expect(keys).toContain(foreign);
      inner.close();
      await bucket.drop();
    },
  };
}

describe(PrefixedFileStorage.name, () => {
  describe('storage contract (S3, bucket shared with other prefixes)', () => {
    storageContract(prefixedHarness);
  });

  describe('key mapping', () => {
    let h: StorageHarness & { bucket: TestBucket };
    beforeAll(async () => (h = await prefixedHarness()));
    afterAll(async () => h?.close());

    it('stores under the prefix and lists, heads and deletes with unprefixed keys only', async () => {
      const key = storageKeyFor(newFileId(Date.now()).publicId);
      await h.storage.put(key, streamOf(Buffer.from('mine')));
      expect(await listKeys(h.bucket.client, h.bucket.settings.bucket)).toContain(PREFIX + key);
      expect((await h.storage.head(key))?.key).toBe(key);
      const listed: string[] = [];
      for await (const info of h.storage.list('files/')) listed.push(info.key);
      expect(listed).toEqual([key]);
      expect(await h.storage.deleteMany([key, 'files/file_unprefixed'])).toEqual({ failed: [] });
      const left = await listKeys(h.bucket.client, h.bucket.settings.bucket);
      expect(left).not.toContain(PREFIX + key);
      // Deleting the same unprefixed key through the adapter targets only its own prefix.
      expect(left).toContain('files/file_unprefixed');
    });

    it('refuses prefixes that are not safe path segments ending in a slash', () => {
      for (const bad of ['', 'a', '/a/', 'a//', '../a/', 'a b/', 'ä/']) {
        expect(() => new PrefixedFileStorage(h.storage, bad)).toThrow(/prefix/);
      }
    });
  });
});
