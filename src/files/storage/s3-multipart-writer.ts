import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  type CompletedPart,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { noteStreamedBytes } from '../../common/streamed-bytes-gc';

/**
 * Part buffers shared by every upload of one S3FileStorage: at most `maxBuffers` buffers of
 * `bufferSize` bytes exist at once, so upload memory is bounded per process, not per upload, and
 * buffers are reused (no fresh allocation, page faults and garbage for every part). An upload that
 * finds none free waits for one (its client is slowed by TCP backpressure meanwhile); every
 * holder gives its buffer back once its part is stored or has failed, so waiting always ends.
 * Buffers left unused for `idleMs` are dropped, so an idle service gives the memory back.
 */
export class PartBufferPool {
  private readonly free: Buffer[] = [];
  private readonly waiting: ((buffer: Buffer) => void)[] = [];
  private allocated = 0;
  private idleTimer?: NodeJS.Timeout;
  /** Uploads filling a pooled buffer from their client, oldest first. */
  private readonly fillers = new Set<{ since: number; spill: () => void }>();
  private spillTimer?: NodeJS.Timeout;

  constructor(
    readonly bufferSize: number,
    readonly maxBuffers: number,
    private readonly idleMs = 30_000,
  ) {}

  acquire(): Promise<Buffer> {
    clearTimeout(this.idleTimer);
    const buffer = this.free.pop();
    if (buffer) return Promise.resolve(buffer);
    if (this.allocated < this.maxBuffers) {
      this.allocated++;
      // Not from Node's shared slab: a part buffer must be exclusively ours while it is reused.
      return Promise.resolve(Buffer.allocUnsafeSlow(this.bufferSize));
    }
    const waited = new Promise<Buffer>((resolve) => this.waiting.push(resolve));
    this.scheduleSpill();
    return waited;
  }

  /**
   * Registers an upload filling a pooled buffer from its client. A client that sends a little and
   * then goes quiet would otherwise hold the buffer indefinitely and starve every other upload
   * (a slow-client attack on the whole instance): while someone waits, a filler older than
   * SPILL_AFTER_MS is asked to `spill`, i.e. move its bytes to memory of its own (allocated
   * lazily by the OS, so it costs what the client actually sent) and release the pooled buffer.
   * Returns the function that unregisters the filler.
   */
  filling(spill: () => void): () => void {
    const filler = { since: Date.now(), spill };
    this.fillers.add(filler);
    return () => void this.fillers.delete(filler);
  }

  private scheduleSpill(): void {
    if (this.spillTimer) return;
    this.spillTimer = setTimeout(() => {
      this.spillTimer = undefined;
      const cutoff = Date.now() - SPILL_AFTER_MS;
      for (const filler of this.fillers) {
        if (this.waiting.length === 0) break;
        if (filler.since > cutoff) continue;
        this.fillers.delete(filler);
        filler.spill();
      }
      if (this.waiting.length > 0) this.scheduleSpill();
    }, SPILL_AFTER_MS);
    this.spillTimer.unref();
  }

  release(buffer: Buffer): void {
    const next = this.waiting.shift();
    if (next) return next(buffer);
    this.free.push(buffer);
    if (this.free.length === this.allocated) {
      this.idleTimer = setTimeout(() => this.drop(), this.idleMs);
      this.idleTimer.unref();
    }
  }

  private drop(): void {
    this.allocated -= this.free.length;
    this.free.length = 0;
  }
}

export interface MultipartWriteOptions {
  client: S3Client;
  bucket: string;
  key: string;
  /** Bytes per part (the last may be smaller); the pool's buffer size. */
  pool: PartBufferPool;
  /** Parts being stored at once per upload; one more is filled meanwhile. */
  queueSize: number;
  /** Maps an S3 failure to the error to throw (the body's own errors are thrown untouched). */
  storageError: (error: unknown, what: string) => Error;
}

/** How long an upload may fill a pooled buffer while another upload waits for one. */
const SPILL_AFTER_MS = 1000;

/** A body at most this long is sent with one PutObject, without taking a part buffer. */
const SMALL_OBJECT_BYTES = 1024 * 1024;


/**
 * Stores `body` (of unknown length) under `key`: one PutObject when it is small, else a multipart
 * upload whose parts are filled from the stream into pooled buffers while up to `queueSize`
 * earlier parts are being stored (reading ahead, so the client never waits for a part's
 * round trip). Nothing is visible under `key` until this resolves. On failure the multipart upload
 * is aborted and the error rethrown: the body's own error if the body failed, else the S3 one
 * (the body is then destroyed). A multipart upload left open by a crash or a failed abort is the
 * reconciler's to clean up.
 */
export async function writeObject(body: Readable, options: MultipartWriteOptions): Promise<void> {
  const { client, bucket: Bucket, key: Key, pool, queueSize, storageError } = options;
  const partSize = pool.bufferSize;
  const smallLimit = Math.min(SMALL_OBJECT_BYTES, partSize);
  let bodyError: unknown;
  body.once('error', (error) => (bodyError ??= error));

  let head: Buffer[] = [];
  let headBytes = 0;
  let current: Buffer | undefined;
  /** Whether `current` is the pool's (else it is this upload's own, after a spill). */
  let currentPooled = false;
  let unregisterFiller = () => {};
  /** Takes a pooled buffer to fill, ready to be spilled if the client stalls while others wait. */
  const takeBuffer = async (): Promise<Buffer> => {
    const buffer = await pool.acquire();
    currentPooled = true;
    unregisterFiller = pool.filling(() => {
      const own = Buffer.allocUnsafeSlow(partSize);
      buffer.copy(own, 0, 0, filled);
      current = own;
      currentPooled = false;
      pool.release(buffer);
    });
    return buffer;
  };
  let filled = 0;
  let partNumber = 0;
  let uploadId: Promise<string> | undefined;
  let failure: { error: unknown } | undefined;
  const inFlight = new Set<Promise<void>>();
  const parts: CompletedPart[] = [];

  const fail = (error: unknown) => {
    failure ??= { error };
    // Stops the loop below even if the client is between chunks.
    body.destroy();
  };

  const sendPart = async () => {
    while (inFlight.size >= queueSize) await Promise.race(inFlight);
    if (failure) return;
    uploadId ??= client
      .send(new CreateMultipartUploadCommand({ Bucket, Key, ContentType: 'application/octet-stream' }))
      .then((out) => out.UploadId ?? Promise.reject(new Error('CreateMultipartUpload returned no UploadId')));
    const buffer = current!;
    const pooled = currentPooled;
    unregisterFiller();
    // The socket buffers these bytes arrived in are garbage now.
    noteStreamedBytes(filled);
    const PartNumber = ++partNumber;
    const Body = buffer.subarray(0, filled);
    current = undefined;
    filled = 0;
    const store = async () => {
      try {
        const UploadId = await uploadId!;
        const out = await client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body }));
        parts.push({ PartNumber, ETag: out.ETag });
      } catch (error) {
        fail(error);
      } finally {
        if (pooled) pool.release(buffer);
      }
    };
    const sending: Promise<void> = store().then(() => void inFlight.delete(sending));
    inFlight.add(sending);
  };

  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (current === undefined && partNumber === 0 && headBytes + chunk.length <= smallLimit) {
        head.push(chunk);
        headBytes += chunk.length;
        continue;
      }
      let offset = 0;
      if (current === undefined && head.length > 0) {
        current = await takeBuffer();
        for (const part of head) filled += part.copy(current, filled);
        head = [];
      }
      while (offset < chunk.length) {
        current ??= await takeBuffer();
        const copied = chunk.copy(current, filled, offset);
        filled += copied;
        offset += copied;
        if (filled === partSize) await sendPart();
      }
      if (failure) break;
    }
    if (!failure && bodyError === undefined) {
      if (partNumber === 0) {
        // The whole body fitted in the head or in one part: a single request, no multipart upload.
        const Body = current ? current.subarray(0, filled) : Buffer.concat(head, headBytes);
        try {
          await client.send(new PutObjectCommand({ Bucket, Key, Body, ContentType: 'application/octet-stream' }));
        } catch (error) {
          fail(error);
        }
      } else {
        if (filled > 0) await sendPart();
        await Promise.all(inFlight);
        if (!failure) {
          parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
          await client
            .send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId: await uploadId!, MultipartUpload: { Parts: parts } }))
            .catch(fail);
        }
      }
    }
  } catch (error) {
    // The body failed (its own error, seen by the loop) or we destroyed it after an S3 failure.
    if (!failure) bodyError ??= error;
  } finally {
    unregisterFiller();
    if (current && currentPooled) pool.release(current);
  }
  if (bodyError === undefined && !failure) return;
  await Promise.allSettled(inFlight);
  if (uploadId) {
    const UploadId = await uploadId.catch(() => undefined);
    // Best effort: an upload this leaves open is found and aborted by the reconciler.
    if (UploadId) await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
  }
  if (bodyError !== undefined) throw bodyError;
  throw storageError(failure!.error, `upload of ${Key}`);
}
