import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FsFileStorage } from '../../src/files/storage/fs-file-storage';
import { StorageUnavailableError } from '../../src/files/files.errors';
import { manualStream, randomContent, streamOf, eventually } from '../support/streams';
import { storageContract, type StorageHarness } from './storage-contract';

async function fsHarness(): Promise<StorageHarness & { root: string }> {
  const root = await mkdtemp(path.join(tmpdir(), 'files-api-storage-'));
  const storage = new FsFileStorage(root);
  await storage.init();
  const partials = () => readdir(path.join(root, '.partial'));
  return {
    root,
    storage,
    openWrites: partials,
    startIncompleteUpload: async (key) => {
      // A put whose body never ends: the partial file exists while the body stays open.
      const before = new Set(await partials());
      const body = manualStream();
      const put = storage.put(key, body.stream).catch((error: unknown) => error);
      await body.feed(randomContent(100_000));
      await eventually(async () => (await partials()).some((name) => !before.has(name)));
      return {
        release: async () => {
          const stop = new Error('test releases the incomplete upload');
          body.stream.destroy(stop);
          expect(await put).toBe(stop);
        },
      };
    },
    unreachable: () => new FsFileStorage(path.join(root, 'no-such-dir', 'files')),
    undeletableKey: async () => {
      // A directory (with something in it) where the file would be: unlink fails with EISDIR.
      const key = `files/file_dir${Date.now()}`;
      await mkdir(path.join(root, key), { recursive: true });
      await writeFile(path.join(root, key, 'inside'), 'x');
      return key;
    },
    close: () => rm(root, { recursive: true, force: true }),
  };
}

describe(FsFileStorage.name, () => {
  describe('storage contract', () => {
    storageContract(fsHarness, { undeletableKeys: true });
  });

  describe('on disk', () => {
    let h: Awaited<ReturnType<typeof fsHarness>>;
    beforeAll(async () => {
      h = await fsHarness();
    });
    afterAll(async () => h?.close());

    it('stores an object as a plain file under its key once put resolves', async () => {
      const content = randomContent(5000);
      await h.storage.put('files/file_plain', streamOf(content));
      expect((await stat(path.join(h.root, 'files', 'file_plain'))).size).toBe(5000);
      expect(await h.openWrites()).toEqual([]);
    });

    it('writes into the partial directory, never to the final path, while a put runs', async () => {
      const body = manualStream();
      const put = h.storage.put('files/file_inflight', body.stream);
      await body.feed(randomContent(10_000));
      await eventually(async () => (await h.openWrites()).length === 1);
      await expect(stat(path.join(h.root, 'files', 'file_inflight'))).rejects.toMatchObject({ code: 'ENOENT' });
      body.stream.end();
      await put;
      expect(await h.openWrites()).toEqual([]);
    });

    it('refuses to abort an incomplete upload whose handle would leave the partial directory', async () => {
      const victim = path.join(h.root, 'victim');
      await writeFile(victim, 'keep me');
      await expect(
        h.storage.abortIncompleteUpload({ key: 'files/x', handle: '../victim', initiated: new Date() }),
      ).rejects.toThrow();
      expect((await stat(victim)).size).toBe(7);
    });

    it('fails ping with StorageUnavailableError when the directory is not accessible', async () => {
      await expect(h.unreachable().ping()).rejects.toBeInstanceOf(StorageUnavailableError);
    });
  });
});
