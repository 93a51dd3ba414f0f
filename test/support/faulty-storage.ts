import type { Readable } from 'node:stream';
import { StorageUnavailableError } from '../../src/files/files.errors';
import {
  ByteRange,
  type DeleteManyResult,
  FileStorage,
  IncompleteUpload,
  ObjectReadStream,
  StoredObjectInfo,
} from '../../src/files/storage/file-storage';

/**
 * A real adapter with faults the test switches on: deletes of chosen keys fail as if the backend
 * were down (in `deleteMany`, only those keys fail, as in a partial DeleteObjects failure), and
 * deletes can be held at a gate so the test can act while one is in flight. Everything else goes
 * straight to the real backend.
 */
export class FaultyStorage extends FileStorage {
  /** Keys whose delete fails with StorageUnavailableError. */
  readonly failingDeletes = new Set<string>();
  /** Every key a delete was attempted for, in order (by `delete` or `deleteMany`). */
  readonly deleteAttempts: string[] = [];
  /** The keys of each `deleteMany` call, in order. */
  readonly deleteManyCalls: string[][] = [];
  private gate?: { opened: Promise<void>; open: () => void; reached: Promise<void>; reach: () => void };

  constructor(private readonly inner: FileStorage) {
    super();
  }

  /** Holds every following delete until `open()` is called; `reached` resolves when one waits. */
  holdDeletes(): { reached: Promise<void>; open: () => void } {
    let open!: () => void;
    let reach!: () => void;
    const opened = new Promise<void>((resolve) => (open = resolve));
    const reached = new Promise<void>((resolve) => (reach = resolve));
    this.gate = { opened, open, reached, reach };
    return {
      reached,
      open: () => {
        this.gate = undefined;
        open();
      },
    };
  }

  async delete(key: string): Promise<void> {
    this.deleteAttempts.push(key);
    await this.passGate();
    if (this.failingDeletes.has(key)) throw this.injected(key);
    await this.inner.delete(key);
  }

  override async deleteMany(keys: readonly string[]): Promise<DeleteManyResult> {
    this.deleteAttempts.push(...keys);
    this.deleteManyCalls.push([...keys]);
    await this.passGate();
    const failing = keys.filter((key) => this.failingDeletes.has(key));
    const { failed } = await this.inner.deleteMany(keys.filter((key) => !this.failingDeletes.has(key)));
    return { failed: [...failing.map((key) => ({ key, error: this.injected(key) })), ...failed] };
  }

  private async passGate(): Promise<void> {
    const gate = this.gate;
    if (gate) {
      gate.reach();
      await gate.opened;
    }
  }

  private injected(key: string): Error {
    return new StorageUnavailableError(`injected failure deleting ${key}`);
  }

  put(key: string, body: Readable): Promise<void> {
    return this.inner.put(key, body);
  }
  openRead(key: string, range?: ByteRange): Promise<ObjectReadStream | null> {
    return this.inner.openRead(key, range);
  }
  head(key: string): Promise<StoredObjectInfo | null> {
    return this.inner.head(key);
  }
  list(prefix: string): AsyncIterable<StoredObjectInfo> {
    return this.inner.list(prefix);
  }
  listIncompleteUploads(prefix: string): AsyncIterable<IncompleteUpload> {
    return this.inner.listIncompleteUploads(prefix);
  }
  abortIncompleteUpload(upload: IncompleteUpload): Promise<void> {
    return this.inner.abortIncompleteUpload(upload);
  }
  ping(): Promise<void> {
    return this.inner.ping();
  }
}
