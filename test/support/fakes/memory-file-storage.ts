import { Readable } from 'node:stream';
import {
  type ByteRange,
  FileStorage,
  type IncompleteUpload,
  type ObjectReadStream,
  type StoredObjectInfo,
} from '../../../src/files/storage/file-storage';
import { assertSafeKey } from '../../../src/files/storage/storage-key';

export type StorageOperation = 'put' | 'openRead' | 'head' | 'delete' | 'list' | 'ping';

/**
 * FileStorage in memory, keeping the port's invariants: `put` consumes the whole body and makes
 * the object visible only once it resolves; if the body errors, `put` rejects with that very
 * error and leaves nothing; `delete` of a missing key succeeds; unsafe keys are refused.
 *
 * `failures` makes an operation reject (e.g. with StorageUnavailableError) until cleared.
 */
export class MemoryFileStorage extends FileStorage {
  private readonly objects = new Map<string, { data: Buffer; lastModified: Date }>();
  private readonly incomplete = new Map<string, IncompleteUpload>();
  private nextHandle = 1;
  /** An operation listed here rejects with the given error. */
  readonly failures: Partial<Record<StorageOperation, Error>> = {};

  async put(key: string, body: Readable): Promise<void> {
    assertSafeKey(key);
    const failure = this.failures.put;
    if (failure) {
      // A backend that refuses the write: the body is left to its owner, drained so nothing stalls.
      body.resume();
      throw failure;
    }
    const handle = String(this.nextHandle++);
    this.incomplete.set(handle, { key, handle, initiated: new Date() });
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
      this.objects.set(key, { data: Buffer.concat(chunks), lastModified: new Date() });
    } finally {
      this.incomplete.delete(handle);
    }
  }

  async openRead(key: string, range?: ByteRange): Promise<ObjectReadStream | null> {
    this.check('openRead');
    assertSafeKey(key);
    const object = this.objects.get(key);
    if (!object) return null;
    const data = range ? object.data.subarray(range.start, range.end + 1) : object.data;
    return { body: Readable.from([Buffer.from(data)]), size: object.data.length };
  }

  async head(key: string): Promise<StoredObjectInfo | null> {
    this.check('head');
    assertSafeKey(key);
    const object = this.objects.get(key);
    return object ? { key, size: object.data.length, lastModified: object.lastModified } : null;
  }

  async delete(key: string): Promise<void> {
    this.check('delete');
    assertSafeKey(key);
    this.objects.delete(key);
  }

  async *list(prefix: string): AsyncIterable<StoredObjectInfo> {
    this.check('list');
    for (const [key, object] of [...this.objects]) {
      if (key.startsWith(prefix)) yield { key, size: object.data.length, lastModified: object.lastModified };
    }
  }

  async *listIncompleteUploads(prefix: string): AsyncIterable<IncompleteUpload> {
    this.check('list');
    for (const upload of [...this.incomplete.values()]) if (upload.key.startsWith(prefix)) yield upload;
  }

  async abortIncompleteUpload(upload: IncompleteUpload): Promise<void> {
    this.incomplete.delete(upload.handle);
  }

  async ping(): Promise<void> {
    this.check('ping');
  }

  // Test helpers, outside the port.

  /** Stores an object directly, as if an earlier put had completed. */
  seed(key: string, data: Buffer | string): void {
    assertSafeKey(key);
    this.objects.set(key, { data: Buffer.from(data), lastModified: new Date() });
  }

  /** The bytes under `key`, or undefined. */
  read(key: string): Buffer | undefined {
    return this.objects.get(key)?.data;
  }

  /** Every key stored, sorted. */
  keys(): string[] {
    return [...this.objects.keys()].sort();
  }

  /** Writes started and not finished (an upload still streaming). */
  get writesInProgress(): number {
    return this.incomplete.size;
  }

  private check(operation: StorageOperation): void {
    const failure = this.failures[operation];
    if (failure) throw failure;
  }
}
