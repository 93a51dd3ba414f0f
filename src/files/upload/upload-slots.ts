import { FilesError, FilesErrorCode } from '../files.errors';

/**
 * Counts uploads in progress on this instance, in total and per owner, and refuses one more
 * beyond either cap with 429 and Retry-After, so one owner (or a burst) cannot take every
 * socket, stream and storage connection the instance has.
 */
export class UploadSlots {
  private total = 0;
  private readonly perOwner = new Map<string, number>();

  constructor(
    private readonly maxTotal: number,
    private readonly maxPerOwner: number,
  ) {}

  /** Takes a slot for `ownerId`; the returned function gives it back (idempotent). */
  acquire(ownerId: string): () => void {
    const mine = this.perOwner.get(ownerId) ?? 0;
    if (mine >= this.maxPerOwner) {
      throw new FilesError(
        FilesErrorCode.TooManyUploads,
        `Too many concurrent uploads for this API key (limit ${this.maxPerOwner}). Retry after the running ones finish.`,
        null,
        { retryAfterSeconds: 1 },
      );
    }
    if (this.total >= this.maxTotal) {
      throw new FilesError(
        FilesErrorCode.TooManyUploads,
        'The server is handling too many uploads right now. Retry shortly.',
        null,
        { retryAfterSeconds: 1 },
      );
    }
    this.total += 1;
    this.perOwner.set(ownerId, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total -= 1;
      const left = (this.perOwner.get(ownerId) ?? 1) - 1;
      if (left === 0) this.perOwner.delete(ownerId);
      else this.perOwner.set(ownerId, left);
    };
  }

  get inProgress(): number {
    return this.total;
  }
}
