import { fileIdFromUuid, newFileId, parseFileId } from '../../../src/files/file-id';
import type { FilePage, ListQuery, StoredFile } from '../../../src/files/file.types';
import { FilesError, FilesErrorCode } from '../../../src/files/files.errors';
import type { CommitUpload, CommittedUpload, FilesRepository, Tombstone } from '../../../src/files/files.repository';

type Row = {
  uuid: string;
  ownerId: string;
  filename: string;
  createdAt: Date;
  heartbeatAt: Date;
  state: 'pending' | 'ready' | 'deleting';
  purpose?: string;
  bytes: number;
  sha256?: string | null;
  expiresAt?: Date;
};

/** The methods of FilesRepository this fake stands in for; a changed signature fails to compile. */
type RepositoryPort = Pick<
  FilesRepository,
  | 'createPending'
  | 'touchPending'
  | 'liveUsage'
  | 'deletePending'
  | 'commitUpload'
  | 'findVisible'
  | 'listPage'
  | 'tombstone'
  | 'tombstoneExpired'
  | 'findStaleTombstones'
  | 'deleteTombstone'
  | 'deleteTombstones'
  | 'ping'
>;
export type RepositoryMethod = keyof RepositoryPort;

/**
 * FilesRepository in memory, with the same lifecycle (pending → ready → deleting → gone) and the
 * same invariant: an owner's usage is the sum of its `ready` rows, changed only together with
 * the state change that causes it; the quota check happens at commit, against current usage.
 */
export class MemoryFilesRepository implements RepositoryPort {
  private readonly rows = new Map<string, Row>();
  private readonly usage = new Map<string, number>();
  /** A method listed here rejects with the given error (e.g. DatabaseUnavailableError). */
  readonly failures: Partial<Record<RepositoryMethod, Error>> = {};

  /** Typed as the real class, for constructor injection. */
  asRepository(): FilesRepository {
    return this as unknown as FilesRepository;
  }

  async createPending(input: { uuid: string; ownerId: string; filename: string; createdAt: Date; now: Date }): Promise<void> {
    this.check('createPending');
    if (this.rows.has(input.uuid)) throw new Error(`duplicate id ${input.uuid}`);
    this.rows.set(input.uuid, { ...input, heartbeatAt: input.now, state: 'pending', bytes: 0 });
  }

  async touchPending(uuid: string, now: Date): Promise<boolean> {
    this.check('touchPending');
    const row = this.rows.get(uuid);
    if (row?.state !== 'pending') return false;
    row.heartbeatAt = now;
    return true;
  }

  async liveUsage(ownerId: string, now: Date): Promise<number> {
    this.check('liveUsage');
    const expired = this.ownerRows(ownerId).filter((r) => r.state === 'ready' && r.expiresAt! <= now);
    return this.usageOf(ownerId) - expired.reduce((sum, r) => sum + r.bytes, 0);
  }

  async deletePending(uuid: string): Promise<void> {
    this.check('deletePending');
    if (this.rows.get(uuid)?.state === 'pending') this.rows.delete(uuid);
  }

  async commitUpload(input: CommitUpload): Promise<CommittedUpload> {
    this.check('commitUpload');
    // One "transaction": nothing changes unless every step succeeds.
    const expired = this.ownerRows(input.ownerId).filter((r) => r.state === 'ready' && r.expiresAt! <= input.now);
    const released = expired.reduce((sum, r) => sum + r.bytes, 0);
    const used = this.usageOf(input.ownerId) - released;
    if (used + input.bytes > input.quotaBytes) {
      throw new FilesError(FilesErrorCode.QuotaExceeded, `would exceed quota of ${input.quotaBytes} bytes`, 'file');
    }
    const row = this.rows.get(input.uuid);
    if (row?.state !== 'pending' || row.ownerId !== input.ownerId) {
      throw new FilesError(FilesErrorCode.ServiceUnavailable, 'The upload was interrupted before it could be stored.');
    }
    for (const r of expired) r.state = 'deleting';
    this.usage.set(input.ownerId, used + input.bytes);
    Object.assign(row, {
      state: 'ready',
      purpose: input.purpose,
      filename: input.filename,
      bytes: input.bytes,
      sha256: input.sha256,
      expiresAt: input.expiresAt,
      heartbeatAt: input.now,
    });
    return {
      file: toStoredFile(row),
      expired: expired.map(toTombstone),
    };
  }

  async findVisible(ownerId: string, uuid: string, now: Date): Promise<StoredFile | null> {
    this.check('findVisible');
    const row = this.rows.get(uuid);
    return row && row.ownerId === ownerId && isVisible(row, now) ? toStoredFile(row) : null;
  }

  async listPage(ownerId: string, query: ListQuery, now: Date): Promise<FilePage> {
    this.check('listPage');
    const after = query.after === undefined ? undefined : parseFileId(query.after)?.uuid;
    const sign = query.order === 'asc' ? 1 : -1;
    const rows = this.ownerRows(ownerId)
      .filter((r) => isVisible(r, now) && (query.purpose === undefined || r.purpose === query.purpose))
      .filter((r) => after === undefined || sign * compare(r.uuid, after) > 0)
      .sort((a, b) => sign * compare(a.uuid, b.uuid));
    return { files: rows.slice(0, query.limit).map(toStoredFile), hasMore: rows.length > query.limit };
  }

  async tombstone(ownerId: string, uuid: string, now: Date): Promise<Tombstone | null> {
    this.check('tombstone');
    const row = this.rows.get(uuid);
    if (!row || row.ownerId !== ownerId || !isVisible(row, now)) return null;
    this.toDeleting(row, now);
    return toTombstone(row);
  }

  async tombstoneExpired(limit: number, now: Date): Promise<Tombstone[]> {
    this.check('tombstoneExpired');
    const expired = [...this.rows.values()]
      .filter((r) => r.state === 'ready' && r.expiresAt! <= now)
      .sort((a, b) => a.expiresAt!.getTime() - b.expiresAt!.getTime())
      .slice(0, limit);
    for (const row of expired) this.toDeleting(row, now);
    return expired.map(toTombstone);
  }

  async findStaleTombstones(staleBefore: Date, limit: number): Promise<Tombstone[]> {
    this.check('findStaleTombstones');
    return [...this.rows.values()]
      .filter((r) => r.state === 'deleting' && r.heartbeatAt < staleBefore)
      .sort((a, b) => a.heartbeatAt.getTime() - b.heartbeatAt.getTime())
      .slice(0, limit)
      .map(toTombstone);
  }

  async deleteTombstone(uuid: string): Promise<void> {
    this.check('deleteTombstone');
    if (this.rows.get(uuid)?.state === 'deleting') this.rows.delete(uuid);
  }

  async deleteTombstones(uuids: readonly string[]): Promise<number> {
    this.check('deleteTombstones');
    let deleted = 0;
    for (const uuid of uuids) {
      if (this.rows.get(uuid)?.state === 'deleting' && this.rows.delete(uuid)) deleted += 1;
    }
    return deleted;
  }

  async ping(): Promise<void> {
    this.check('ping');
  }

  // Test helpers, outside the port.

  /** Adds a committed file (and charges its owner), as if uploaded earlier. */
  seedReady(file: { ownerId: string; bytes: number; createdAt: Date; expiresAt: Date; purpose?: string; filename?: string }): StoredFile {
    const { uuid } = newFileId(file.createdAt.getTime());
    const row: Row = {
      uuid,
      ownerId: file.ownerId,
      filename: file.filename ?? 'seeded.jsonl',
      createdAt: file.createdAt,
      heartbeatAt: file.createdAt,
      state: 'ready',
      purpose: file.purpose ?? 'batch',
      bytes: file.bytes,
      sha256: null,
      expiresAt: file.expiresAt,
    };
    this.rows.set(uuid, row);
    this.usage.set(file.ownerId, this.usageOf(file.ownerId) + file.bytes);
    return toStoredFile(row);
  }

  /** The owner's charged bytes (`owner_usage.used_bytes`). */
  usageOf(ownerId: string): number {
    return this.usage.get(ownerId) ?? 0;
  }

  /** The state of the row with this public id or uuid, or undefined when there is none. */
  stateOf(id: string): Row['state'] | undefined {
    return this.rows.get(parseFileId(id)?.uuid ?? id)?.state;
  }

  /** How many rows exist, in any state. */
  get size(): number {
    return this.rows.size;
  }

  private toDeleting(row: Row, now: Date): void {
    row.state = 'deleting';
    row.heartbeatAt = now;
    this.usage.set(row.ownerId, this.usageOf(row.ownerId) - row.bytes);
  }

  private ownerRows(ownerId: string): Row[] {
    return [...this.rows.values()].filter((r) => r.ownerId === ownerId);
  }

  private check(method: RepositoryMethod): void {
    const failure = this.failures[method];
    if (failure) throw failure;
  }
}

function isVisible(row: Row, now: Date): boolean {
  return row.state === 'ready' && row.expiresAt! > now;
}

function toStoredFile(row: Row): StoredFile {
  return {
    id: fileIdFromUuid(row.uuid).publicId,
    ownerId: row.ownerId,
    purpose: row.purpose!,
    filename: row.filename,
    bytes: row.bytes,
    sha256: row.sha256 ?? null,
    createdAt: row.createdAt,
    expiresAt: row.expiresAt!,
  };
}

function toTombstone(row: Row): Tombstone {
  return { uuid: row.uuid, publicId: fileIdFromUuid(row.uuid).publicId, ownerId: row.ownerId, bytes: row.bytes };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
