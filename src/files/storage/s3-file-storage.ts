import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import { StorageUnavailableError } from '../files.errors';
import {
  ByteRange,
  type DeleteManyResult,
  FileStorage,
  IncompleteUpload,
  ObjectReadStream,
  StoredObjectInfo,
} from './file-storage';
import { PartBufferPool, writeObject } from './s3-multipart-writer';
import { assertSafeKey } from './storage-key';

export interface S3StorageOptions {
  bucket: string;
  region: string;
  endpoint?: string;
  forcePathStyle: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  connectTimeoutMs: number;
  /** Longest a socket may stay idle (no bytes either way) before the call fails. */
  requestTimeoutMs: number;
  /** Multipart part size; S3's minimum is 5 MiB. */
  partSizeBytes?: number;
  /** Parts in flight per upload (one more is being filled meanwhile). */
  queueSize?: number;
  /**
   * Memory for part buffers, shared by all uploads at once: floor(this / partSize) buffers (at
   * least one), so upload memory stays bounded whatever the number of concurrent uploads. Default:
   * 32 MiB, or partSize × (queueSize + 1) if that is more.
   */
  uploadBufferBytes?: number;
}

/** Default part-buffer budget: with 8 MiB parts, 8 concurrent uploads stay under 64 MiB of RSS growth. */
const DEFAULT_UPLOAD_BUFFER_BYTES = 32 * 1024 * 1024;

const NOT_FOUND = new Set(['NotFound', 'NoSuchKey', 'NoSuchUpload']);
/** S3's limit on the keys of one DeleteObjects request. */
const DELETE_OBJECTS_MAX_KEYS = 1000;
/**
 * DeleteObjects requests in flight at once. Some servers work through one request key by key
 * (Swift's s3api two at a time), so a large batch goes out as several requests side by side.
 */
const DELETE_REQUESTS_IN_FLIGHT = 8;

/**
 * S3 adapter (AWS, MinIO, Ceph RGW, Swift s3api). Uploads stream as multipart uploads through a
 * pool of reused part buffers (see s3-multipart-writer.ts), so memory stays bounded by
 * `uploadBufferBytes` whatever the files' sizes and however many uploads run at once.
 */
export class S3FileStorage extends FileStorage {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly queueSize: number;
  private readonly partBuffers: PartBufferPool;

  constructor(options: S3StorageOptions) {
    super();
    this.bucket = options.bucket;
    const partSize = options.partSizeBytes ?? 8 * 1024 * 1024;
    this.queueSize = options.queueSize ?? 2;
    // By default one upload can always fill its whole queue plus the part being read.
    const bufferBytes = options.uploadBufferBytes ?? Math.max(DEFAULT_UPLOAD_BUFFER_BYTES, partSize * (this.queueSize + 1));
    this.partBuffers = new PartBufferPool(partSize, Math.max(1, Math.floor(bufferBytes / partSize)));
    this.client = new S3Client({
      region: options.region,
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle,
      credentials:
        options.accessKeyId && options.secretAccessKey
          ? { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey }
          : undefined,
      // Streamed aws-chunked checksums are refused by Swift s3api and Ceph RGW; plain SigV4
      // payload signing works everywhere. We keep our own SHA-256 of every file.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
      // No `Expect: 100-continue` on part uploads: it costs a round trip per part, and the SDK
      // sends such requests on a fresh, non-keep-alive connection unless it was handed agents.
      expectContinueHeader: false,
      requestHandler: {
        connectionTimeout: options.connectTimeoutMs,
        socketTimeout: options.requestTimeoutMs,
        // Agent instances, not agent options: the SDK then reuses these keep-alive sockets for
        // every request, bodies included (see docs/benchmarks.md, "connection reuse").
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 256 }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 256 }),
      },
    });
  }

  async put(key: string, body: Readable): Promise<void> {
    assertSafeKey(key);
    await writeObject(body, {
      client: this.client,
      bucket: this.bucket,
      key,
      pool: this.partBuffers,
      queueSize: this.queueSize,
      storageError: (error, what) => this.translate(error, what),
    });
  }

  async openRead(key: string, range?: ByteRange): Promise<ObjectReadStream | null> {
    assertSafeKey(key);
    try {
      const out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Range: range ? `bytes=${range.start}-${range.end}` : undefined,
        }),
      );
      const body = out.Body as Readable;
      const size = range ? totalFromContentRange(out.ContentRange) : out.ContentLength;
      if (size === undefined) {
        body.destroy();
        throw new StorageUnavailableError(`storage returned no length for ${key}`);
      }
      return { body, size };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw this.translate(error, `read of ${key}`);
    }
  }

  async head(key: string): Promise<StoredObjectInfo | null> {
    assertSafeKey(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { key, size: out.ContentLength ?? 0, lastModified: out.LastModified ?? new Date(0) };
    } catch (error) {
      if (!isNotFound(error)) throw this.translate(error, `head of ${key}`);
    }
    // A HEAD answer has no body, so a missing bucket looks like a missing key (404 NotFound);
    // only a bucket that exists makes "no such object" true.
    await this.ping();
    return null;
  }

  async delete(key: string): Promise<void> {
    assertSafeKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (error) {
      if (isNotFound(error)) return;
      throw this.translate(error, `delete of ${key}`);
    }
  }

  /**
   * DeleteObjects in Quiet mode (only failures come back), the keys spread over up to
   * DELETE_REQUESTS_IN_FLIGHT requests of at most 1000 keys. A request that fails as a whole
   * fails each of its keys; a missing key is not a failure.
   */
  override async deleteMany(keys: readonly string[]): Promise<DeleteManyResult> {
    for (const key of keys) assertSafeKey(key);
    if (keys.length === 0) return { failed: [] };
    const size = Math.min(DELETE_OBJECTS_MAX_KEYS, Math.ceil(keys.length / DELETE_REQUESTS_IN_FLIGHT));
    const requests: string[][] = [];
    for (let i = 0; i < keys.length; i += size) requests.push(keys.slice(i, i + size));
    const failed: DeleteManyResult['failed'] = [];
    let next = 0;
    const worker = async () => {
      while (next < requests.length) failed.push(...(await this.deleteObjects(requests[next++])));
    };
    await Promise.all(Array.from({ length: Math.min(DELETE_REQUESTS_IN_FLIGHT, requests.length) }, worker));
    return { failed };
  }

  private async deleteObjects(keys: string[]): Promise<DeleteManyResult['failed']> {
    const command = new DeleteObjectsCommand({
      Bucket: this.bucket,
      Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
    });
    // S3 requires an integrity header on DeleteObjects; the SDK sends a CRC32 (we calculate
    // checksums only when required), but Swift's s3api insists on Content-MD5.
    command.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { headers?: Record<string, string>; body?: unknown };
        if (request.headers && (typeof request.body === 'string' || request.body instanceof Uint8Array)) {
          request.headers['content-md5'] = createHash('md5').update(request.body).digest('base64');
        }
        return next(args);
      },
      { step: 'build', name: 'deleteObjectsContentMd5' },
    );
    try {
      const out = await this.client.send(command);
      return (out.Errors ?? [])
        .filter((e) => e.Key !== undefined && !NOT_FOUND.has(e.Code ?? ''))
        .map((e) => ({
          key: e.Key!,
          error: new StorageUnavailableError(`S3 DeleteObjects refused the key: ${e.Code ?? 'unknown error'}${e.Message ? ` (${e.Message})` : ''}`),
        }));
    } catch (error) {
      const failure = this.translate(error, `delete of ${keys.length} objects`);
      return keys.map((key) => ({ key, error: failure }));
    }
  }

  async *list(prefix: string): AsyncIterable<StoredObjectInfo> {
    let token: string | undefined;
    do {
      const page = await this.call(`list of ${prefix}`, () =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
        ),
      );
      for (const item of page.Contents ?? []) {
        if (item.Key) {
          yield { key: item.Key, size: item.Size ?? 0, lastModified: item.LastModified ?? new Date(0) };
        }
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async *listIncompleteUploads(prefix: string): AsyncIterable<IncompleteUpload> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.call(`list of uploads under ${prefix}`, () =>
        this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: prefix,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        ),
      );
      for (const item of page.Uploads ?? []) {
        if (item.Key && item.UploadId) {
          yield { key: item.Key, handle: item.UploadId, initiated: item.Initiated ?? new Date(0) };
        }
      }
      if (!page.IsTruncated) return;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  async abortIncompleteUpload(upload: IncompleteUpload): Promise<void> {
    assertSafeKey(upload.key);
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.key, UploadId: upload.handle }),
      );
    } catch (error) {
      if (isNotFound(error)) return;
      throw this.translate(error, `abort of an upload to ${upload.key}`);
    }
  }

  async ping(): Promise<void> {
    await this.call('bucket check', () => this.client.send(new HeadBucketCommand({ Bucket: this.bucket })));
  }

  /** Releases sockets; the client is unusable afterwards. */
  override close(): void {
    this.client.destroy();
  }

  private async call<T>(what: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw this.translate(error, what);
    }
  }

  private translate(error: unknown, what: string): Error {
    if (error instanceof StorageUnavailableError) return error;
    const detail =
      error instanceof S3ServiceException
        ? `${error.name} (HTTP ${error.$metadata?.httpStatusCode ?? '?'})`
        : ((error as NodeJS.ErrnoException)?.code ?? (error as Error)?.name ?? 'unknown error');
    return new StorageUnavailableError(`S3 ${what} failed: ${detail}`, { cause: error });
  }
}

function isNotFound(error: unknown): boolean {
  if (!(error instanceof S3ServiceException)) return false;
  // A missing bucket is a misconfiguration (503), never a missing file.
  if (error.name === 'NoSuchBucket') return false;
  return NOT_FOUND.has(error.name) || error.$metadata?.httpStatusCode === 404;
}

function totalFromContentRange(contentRange: string | undefined): number | undefined {
  const match = /\/(\d+)$/.exec(contentRange ?? '');
  return match ? Number(match[1]) : undefined;
}
