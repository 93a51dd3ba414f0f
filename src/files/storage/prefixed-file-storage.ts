import type { Readable } from 'node:stream';
import {
  FileStorage,
  type ByteRange,
  type DeleteManyResult,
  type IncompleteUpload,
  type ObjectReadStream,
  type StoredObjectInfo,
} from './file-storage';

/** A key prefix: one or more safe path segments, each followed by '/'. */
const KEY_PREFIX_PATTERN = /^([A-Za-z0-9_-]+\/)+$/;

/** Throws unless `prefix` is a valid key prefix; `name` is how the error names it. */
export function assertKeyPrefix(prefix: string, name = 'storage key prefix'): void {
  if (!KEY_PREFIX_PATTERN.test(prefix)) {
    throw new Error(`${name} must be path segments of A-Z a-z 0-9 _ - each ending in '/', got ${JSON.stringify(prefix)}`);
  }
}

/**
 * Keeps one FilesModule instance's objects under its own prefix of a shared bucket or directory,
 * so instances (or other applications) sharing it never see, reconcile or delete each other's
 * objects. Everything above this adapter keeps using unprefixed keys.
 */
export class PrefixedFileStorage extends FileStorage {
  constructor(
    private readonly inner: FileStorage,
    private readonly prefix: string,
  ) {
    super();
    assertKeyPrefix(prefix);
  }

  put(key: string, body: Readable): Promise<void> {
    return this.inner.put(this.prefix + key, body);
  }

  openRead(key: string, range?: ByteRange): Promise<ObjectReadStream | null> {
    return this.inner.openRead(this.prefix + key, range);
  }

  async head(key: string): Promise<StoredObjectInfo | null> {
    const info = await this.inner.head(this.prefix + key);
    return info && { ...info, key };
  }

  delete(key: string): Promise<void> {
    return this.inner.delete(this.prefix + key);
  }

  override async deleteMany(keys: readonly string[]): Promise<DeleteManyResult> {
    const { failed } = await this.inner.deleteMany(keys.map((key) => this.prefix + key));
    return { failed: failed.map((f) => ({ ...f, key: this.strip(f.key) })) };
  }

  async *list(prefix: string): AsyncIterable<StoredObjectInfo> {
    for await (const info of this.inner.list(this.prefix + prefix)) yield { ...info, key: this.strip(info.key) };
  }

  async *listIncompleteUploads(prefix: string): AsyncIterable<IncompleteUpload> {
    for await (const upload of this.inner.listIncompleteUploads(this.prefix + prefix)) {
      yield { ...upload, key: this.strip(upload.key) };
    }
  }

  abortIncompleteUpload(upload: IncompleteUpload): Promise<void> {
    return this.inner.abortIncompleteUpload({ ...upload, key: this.prefix + upload.key });
  }

  ping(): Promise<void> {
    return this.inner.ping();
  }

  override close(): void | Promise<void> {
    return this.inner.close();
  }

  private strip(key: string): string {
    return key.startsWith(this.prefix) ? key.slice(this.prefix.length) : key;
  }
}
