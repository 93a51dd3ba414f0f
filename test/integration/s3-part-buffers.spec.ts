import { S3FileStorage } from '../../src/files/storage/s3-file-storage';
import { storageKeyFor } from '../../src/files/storage/storage-key';
import { newFileId } from '../../src/files/file-id';
import { createTestBucket, type TestBucket } from '../support/backends';
import { manualStream, MiB, randomContent, readAll, sha256, streamOf } from '../support/streams';

const newKey = () => storageKeyFor(newFileId(Date.now()).publicId);

/**
 * Part buffers are shared by every upload of one S3FileStorage (bounded memory). A client that
 * sends a little and then stalls must not keep a shared buffer from everyone else: uploads
 * holding one while their client is silent give it up (their bytes move to memory of their own)
 * as soon as another upload waits.
 */
describe('S3FileStorage part buffers under slow clients', () => {
  let bucket: TestBucket;
  let storage: S3FileStorage;

  beforeAll(async () => {
    bucket = await createTestBucket();
    // Two 5 MiB buffers for the whole storage.
    storage = new S3FileStorage({ ...bucket.settings, partSizeBytes: 5 * MiB, queueSize: 1, uploadBufferBytes: 10 * MiB });
  });
  afterAll(async () => {
    storage?.close();
    await bucket?.drop();
  });

  it('completes a fast upload while stalled uploads hold every buffer, and the stalled ones keep their bytes', async () => {
    const stalled = [0, 1].map(() => {
      const { stream, feed } = manualStream();
      const content = randomContent(7 * MiB);
      return { key: newKey(), stream, feed, content };
    });
    const stalledPuts = stalled.map((s) => storage.put(s.key, s.stream));
    // Each sends 2 MiB (past the small-object threshold, so it fills a shared part buffer), then goes quiet.
    await Promise.all(stalled.map((s) => s.feed(s.content.subarray(0, 2 * MiB))));
    await new Promise((resolve) => setTimeout(resolve, 200));

    const fast = randomContent(12 * MiB);
    const fastKey = newKey();
    const outcome = await Promise.race([
      storage.put(fastKey, streamOf(fast)).then(() => 'stored' as const),
      new Promise<'starved'>((resolve) => setTimeout(() => resolve('starved'), 15_000)),
    ]);
    expect(outcome).toBe('stored');
    expect(sha256(await readAll((await storage.openRead(fastKey))!.body))).toBe(sha256(fast));

    for (const s of stalled) {
      await s.feed(s.content.subarray(2 * MiB));
      s.stream.end();
    }
    await Promise.all(stalledPuts);
    for (const s of stalled) expect(sha256(await readAll((await storage.openRead(s.key))!.body))).toBe(sha256(s.content));
  }, 60_000);
});
