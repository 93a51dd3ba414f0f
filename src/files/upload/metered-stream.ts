import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * Passes bytes through while counting them and computing their SHA-256, and fails the moment the
 * count exceeds `limit`, so an oversized upload is stopped mid-stream instead of stored first.
 */
export class MeteredStream extends Transform {
  private count = 0;
  private readonly hash: Hash = createHash('sha256');
  private digest?: string;

  constructor(
    private readonly limit: number,
    private readonly onLimit: () => Error,
  ) {
    super();
  }

  get bytes(): number {
    return this.count;
  }

  /** Hex SHA-256 of everything that passed; available once the stream has ended. */
  get sha256(): string {
    if (this.digest === undefined) throw new Error('stream has not ended');
    return this.digest;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.count += chunk.length;
    if (this.count > this.limit) {
      callback(this.onLimit());
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.digest = this.hash.digest('hex');
    callback();
  }
}
