import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, access } from 'node:fs/promises';
import { constants } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StorageUnavailableError } from '../files.errors';
import {
  ByteRange,
  FileStorage,
  IncompleteUpload,
  ObjectReadStream,
  StoredObjectInfo,
} from './file-storage';
import { assertSafeKey } from './storage-key';

const PARTIAL_DIR = '.partial';

/**
 * Local-disk adapter. A write goes to `<root>/.partial/<random>` and is fsynced and renamed into
 * place only once complete, so a reader never sees a half-written file and a crash leaves only a
 * partial file for the reconciler.
 */
export class FsFileStorage extends FileStorage {
  constructor(private readonly root: string) {
    super();
    this.root = path.resolve(root);
  }

  async init(): Promise<void> {
    await this.guard(() => mkdir(path.join(this.root, PARTIAL_DIR), { recursive: true }));
  }

  async put(key: string, body: Readable): Promise<void> {
    const target = this.pathOf(key);
    const partial = path.join(this.root, PARTIAL_DIR, `${key.replace(/\//g, '~')}.${randomBytes(6).toString('hex')}`);
    let bodyError: unknown;
    body.once('error', (error) => (bodyError ??= error));
    try {
      await mkdir(path.dirname(target), { recursive: true });
      await mkdir(path.dirname(partial), { recursive: true });
      const out = createWriteStream(partial, { flags: 'wx' });
      await pipeline(body, out);
      await fsync(partial);
      await rename(partial, target);
      await fsync(path.dirname(target));
    } catch (error) {
      await rm(partial, { force: true }).catch(() => undefined);
      if (bodyError !== undefined) throw bodyError;
      throw this.translate(error);
    }
  }

  async openRead(key: string, range?: ByteRange): Promise<ObjectReadStream | null> {
    const file = this.pathOf(key);
    const info = await this.head(key);
    if (info === null) return null;
    const body = createReadStream(file, range ? { start: range.start, end: range.end } : {});
    // Surface open errors (e.g. the file vanished between stat and open) before the caller
    // commits to a response.
    const opened = await new Promise<boolean>((resolve, reject) => {
      const onOpen = () => {
        body.off('error', onError);
        resolve(true);
      };
      const onError = (error: NodeJS.ErrnoException) => {
        body.off('open', onOpen);
        if (error.code === 'ENOENT') resolve(false);
        else reject(this.translate(error));
      };
      body.once('open', onOpen);
      body.once('error', onError);
    });
    if (!opened) return null;
    return { body, size: info.size };
  }

  async head(key: string): Promise<StoredObjectInfo | null> {
    // Outside the try: an unsafe key is a caller bug, not unavailable storage.
    const file = this.pathOf(key);
    try {
      const s = await stat(file);
      return { key, size: s.size, lastModified: s.mtime };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw this.translate(error);
    }
  }

  async delete(key: string): Promise<void> {
    const file = this.pathOf(key);
    try {
      await unlink(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw this.translate(error);
    }
  }

  async *list(prefix: string): AsyncIterable<StoredObjectInfo> {
    for await (const relative of this.walk('')) {
      if (!relative.startsWith(prefix)) continue;
      // stat, not head(): a file this service did not write (`files/.DS_Store`) may have a name
      // head() refuses; the listing reports it, as an S3 listing would, instead of failing.
      let s;
      try {
        s = await stat(path.join(this.root, relative));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw this.translate(error);
      }
      yield { key: relative, size: s.size, lastModified: s.mtime };
    }
  }

  async *listIncompleteUploads(prefix: string): AsyncIterable<IncompleteUpload> {
    const dir = path.join(this.root, PARTIAL_DIR);
    const names = await this.guard(() => readdir(dir).catch(ignoreMissing));
    for (const name of names ?? []) {
      const key = name.replace(/\.[0-9a-f]{12}$/, '').replace(/~/g, '/');
      if (!key.startsWith(prefix)) continue;
      const s = await stat(path.join(dir, name)).catch(() => null);
      if (s) yield { key, handle: name, initiated: s.mtime };
    }
  }

  async abortIncompleteUpload(upload: IncompleteUpload): Promise<void> {
    if (!/^[A-Za-z0-9_~-]+\.[0-9a-f]{12}$/.test(upload.handle)) throw new Error('bad partial handle');
    await this.guard(() => rm(path.join(this.root, PARTIAL_DIR, upload.handle), { force: true }));
  }

  async ping(): Promise<void> {
    await this.guard(() => access(this.root, constants.R_OK | constants.W_OK));
  }

  private async *walk(relative: string): AsyncIterable<string> {
    const entries = await this.guard(() =>
      readdir(path.join(this.root, relative), { withFileTypes: true }).catch(ignoreMissing),
    );
    for (const entry of entries ?? []) {
      if (relative === '' && entry.name === PARTIAL_DIR) continue;
      const child = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) yield* this.walk(child);
      else if (entry.isFile()) yield child;
    }
  }

  private pathOf(key: string): string {
    assertSafeKey(key);
    return path.join(this.root, key);
  }

  private async guard<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw this.translate(error);
    }
  }

  private translate(error: unknown): Error {
    if (error instanceof StorageUnavailableError) return error;
    const code = (error as NodeJS.ErrnoException)?.code ?? 'unknown';
    return new StorageUnavailableError(`filesystem storage failed (${code})`, { cause: error });
  }
}

function ignoreMissing(error: NodeJS.ErrnoException): null {
  if (error.code === 'ENOENT') return null;
  throw error;
}

async function fsync(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
