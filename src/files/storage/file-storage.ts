import type { Readable } from 'node:stream';
import { assertSafeKey } from './storage-key';

/** Metadata of one stored object. */
export interface StoredObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
}

/** An inclusive byte range, both ends known (already resolved against the object's size). */
export interface ByteRange {
  start: number;
  end: number;
}

export interface ObjectReadStream {
  body: Readable;
  /** Total size of the object (not of the range). */
  size: number;
}

/** A write that was started but never finished: an open S3 multipart upload, a partial file. */
export interface IncompleteUpload {
  key: string;
  /** Adapter-specific handle needed to abort it. */
  handle: string;
  initiated: Date;
}

/** What `deleteMany` could not delete; every other key it was given is gone. */
export interface DeleteManyResult {
  failed: { key: string; error: Error }[];
}

/**
 * The storage port. Adapters hold bytes under keys derived from file ids (never from client
 * filenames), translate their backend's failures into StorageUnavailableError, and expose nothing
 * of the backend's own types.
 *
 * Invariants every adapter keeps (checked by the shared contract suite):
 * - `put` is atomic: until it resolves, `head`/`openRead` see nothing under the key; if the body
 *   stream errors, `put` rejects with that very error and leaves no object (a backend-side partial
 *   write, e.g. an S3 multipart upload, is aborted on a best-effort basis and otherwise left for
 *   the reconciler via `listIncompleteUploads`).
 * - `delete` and `deleteMany` are idempotent: deleting a missing key succeeds.
 */
export abstract class FileStorage {
  /** Streams `body` to `key`, replacing nothing that exists (keys are unique per file). */
  abstract put(key: string, body: Readable): Promise<void>;

  /** Opens the object for reading, or returns null when it does not exist. */
  abstract openRead(key: string, range?: ByteRange): Promise<ObjectReadStream | null>;

  /** The object's metadata, or null when it does not exist. */
  abstract head(key: string): Promise<StoredObjectInfo | null>;

  abstract delete(key: string): Promise<void>;

  /**
   * Deletes many keys, as few backend calls as the backend allows (S3: DeleteObjects, 1000 keys
   * per request). Resolves with the keys that could not be deleted and why, each failure on its
   * own (one key's failure never hides the others' success); rejects only for a caller bug such
   * as an unsafe key, before anything is deleted.
   *
   * This default deletes key by key (what a backend without a batch call, such as a filesystem,
   * does anyway), so adapters written before this method existed keep working.
   */
  async deleteMany(keys: readonly string[]): Promise<DeleteManyResult> {
    for (const key of keys) assertSafeKey(key);
    const failed: DeleteManyResult['failed'] = [];
    for (const key of keys) {
      try {
        await this.delete(key);
      } catch (error) {
        failed.push({ key, error: error instanceof Error ? error : new Error(String(error)) });
      }
    }
    return { failed };
  }

  /** Every object whose key starts with `prefix`, in no particular order. */
  abstract list(prefix: string): AsyncIterable<StoredObjectInfo>;

  /** Writes started under `prefix` that were neither completed nor cleaned up. */
  abstract listIncompleteUploads(prefix: string): AsyncIterable<IncompleteUpload>;

  abstract abortIncompleteUpload(upload: IncompleteUpload): Promise<void>;

  /** Resolves when the backend answers and the bucket/directory is usable; for readiness probes. */
  abstract ping(): Promise<void>;

  /** Releases what the adapter holds (sockets); called once when the module that built it stops. */
  close(): void | Promise<void> {}
}
