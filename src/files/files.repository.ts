import { Injectable } from '@nestjs/common';
import { guardDatabase } from '../database/database-errors';
import { FilesDatabase } from '../database/files-database';
import type { File as FileRow, Prisma } from '../generated/prisma/client';
import { fileIdFromUuid, parseFileId } from './file-id';
import type { FilePage, ListQuery, StoredFile } from './file.types';
import { FilesError, FilesErrorCode } from './files.errors';

export interface CommitUpload {
  uuid: string;
  ownerId: string;
  purpose: string;
  filename: string;
  bytes: number;
  sha256: string;
  expiresAt: Date;
  now: Date;
  quotaBytes: number;
}

export interface CommittedUpload {
  file: StoredFile;
  /** The owner's files found expired and taken off their usage in the same transaction. */
  expired: Tombstone[];
}

/** A file taken out of view and off the owner's usage, whose bytes are still to be deleted. */
export interface Tombstone {
  uuid: string;
  publicId: string;
  ownerId: string;
  bytes: number;
}

type Tx = Prisma.TransactionClient;

const TX_OPTIONS = { maxWait: 5_000, timeout: 15_000 } as const;

/**
 * Owner-scoped access to file metadata and usage totals. Every state change that affects what an
 * owner is charged happens in one transaction with the usage update, so `owner_usage.used_bytes`
 * always equals the sum of the owner's `ready` rows. Prisma types never leave this class.
 */
@Injectable()
export class FilesRepository {
  constructor(private readonly db: FilesDatabase) {}

  /** Records an upload before any byte is written, so a crash leaves a row the reconciler finds. */
  async createPending(input: { uuid: string; ownerId: string; filename: string; createdAt: Date; now: Date }): Promise<void> {
    await this.run(() =>
      this.db.prisma.file.create({
        data: {
          id: input.uuid,
          ownerId: input.ownerId,
          filename: input.filename,
          createdAt: input.createdAt,
          heartbeatAt: input.now,
        },
      }),
    );
  }

  /** Proves the writer of a pending upload is alive. Returns false if the row is gone. */
  async touchPending(uuid: string, now: Date): Promise<boolean> {
    const { count } = await this.run(() =>
      this.db.prisma.file.updateMany({ where: { id: uuid, state: 'pending' }, data: { heartbeatAt: now } }),
    );
    return count === 1;
  }

  /** Bytes the owner holds in files still live at `now` (expired ones are about to be released). */
  async liveUsage(ownerId: string, now: Date): Promise<number> {
    const rows = await this.run(
      () => this.db.prisma.$queryRaw<{ live: bigint }[]>`
        SELECT u.used_bytes - COALESCE((
          SELECT SUM(f.bytes) FROM files f
          WHERE f.owner_id = u.owner_id AND f.state = 'ready' AND f.expires_at <= ${now}), 0)::bigint AS live
        FROM owner_usage u WHERE u.owner_id = ${ownerId}`,
    );
    return rows.length === 0 ? 0 : Number(rows[0].live);
  }

  /** Forgets a pending upload whose bytes were removed (or never written). */
  async deletePending(uuid: string): Promise<void> {
    await this.run(() => this.db.prisma.file.deleteMany({ where: { id: uuid, state: 'pending' } }));
  }

  /**
   * Makes a pending upload visible and charges it, in one transaction. Files of the owner that
   * have expired are taken off the usage first, so an owner's quota covers only live files even
   * before the sweeper runs. Throws quota_exceeded (and changes nothing) when the file does not fit.
   */
  async commitUpload(input: CommitUpload): Promise<CommittedUpload> {
    return this.run(() =>
      this.db.prisma.$transaction(async (tx) => {
        const expired = await this.tombstoneExpiredOf(tx, input.ownerId, input.now);
        const net = BigInt(input.bytes) - expired.reduce((sum, t) => sum + BigInt(t.bytes), 0n);
        await tx.$executeRaw`
          INSERT INTO owner_usage (owner_id, used_bytes, updated_at) VALUES (${input.ownerId}, 0, ${input.now})
          ON CONFLICT (owner_id) DO NOTHING`;
        // The conditional update is the quota check: it re-evaluates under the row lock, so
        // concurrent commits serialize and can never push the total past the limit.
        const charged = await tx.$executeRaw`
          UPDATE owner_usage SET used_bytes = used_bytes + ${net}, updated_at = ${input.now}
          WHERE owner_id = ${input.ownerId} AND used_bytes + ${net} <= ${BigInt(input.quotaBytes)}`;
        if (charged !== 1) {
          throw new FilesError(
            FilesErrorCode.QuotaExceeded,
            `Storing this file (${input.bytes} bytes) would exceed your storage quota of ${input.quotaBytes} bytes. ` +
              'Delete files you no longer need and retry.',
            'file',
          );
        }
        const row = await tx.file.updateManyAndReturn({
          where: { id: input.uuid, state: 'pending', ownerId: input.ownerId },
          data: {
            state: 'ready',
            purpose: input.purpose,
            filename: input.filename,
            bytes: BigInt(input.bytes),
            sha256: input.sha256,
            expiresAt: input.expiresAt,
            heartbeatAt: input.now,
          },
        });
        if (row.length !== 1) {
          // The reconciler judged this upload dead (its heartbeat stopped) and removed it.
          throw new FilesError(
            FilesErrorCode.ServiceUnavailable,
            'The upload was interrupted before it could be stored. Please retry.',
          );
        }
        return { file: toStoredFile(row[0]), expired };
      }, TX_OPTIONS),
    );
  }

  /**
   * The owner's file if it is visible at `now`, else null. The two read paths every metadata
   * request takes are prepared pg statements on the shared pool: through Prisma's runtime they
   * cost half the request rate (docs/benchmarks.md, "Metadata rate").
   */
  async findVisible(ownerId: string, uuid: string, now: Date): Promise<StoredFile | null> {
    const { rows } = await this.run(() =>
      this.db.pool.query<FileRecord>({
        name: 'files.findVisible',
        text: `SELECT ${FILE_COLUMNS} FROM files WHERE id = $1::uuid AND owner_id = $2 AND state = 'ready' AND expires_at > $3`,
        values: [uuid, ownerId, now],
      }),
    );
    return rows.length === 0 ? null : fromRecord(rows[0]);
  }

  /**
   * One keyset page. Ids sort by creation time, so the cursor is the id itself: it needs no row
   * and keeps its place after its file is deleted or expires. Reads one row more than the page
   * to know `hasMore` exactly.
   */
  async listPage(ownerId: string, query: ListQuery, now: Date): Promise<FilePage> {
    const after = query.after === undefined ? undefined : parseFileId(query.after)?.uuid;
    const values: unknown[] = [ownerId, now];
    const where = [`owner_id = $1`, `state = 'ready'`, `expires_at > $2`];
    if (query.purpose !== undefined) where.push(`purpose = $${values.push(query.purpose)}`);
    if (after !== undefined) where.push(`id ${query.order === 'asc' ? '>' : '<'} $${values.push(after)}::uuid`);
    const limit = `$${values.push(query.limit + 1)}`;
    const order = query.order === 'asc' ? 'ASC' : 'DESC';
    // One prepared statement per shape (order × purpose filter × cursor): eight at most.
    const name = `files.listPage.${order}.${query.purpose === undefined ? '' : 'p'}.${after === undefined ? '' : 'a'}`;
    const { rows } = await this.run(() =>
      this.db.pool.query<FileRecord>({
        name,
        text: `SELECT ${FILE_COLUMNS} FROM files WHERE ${where.join(' AND ')} ORDER BY id ${order} LIMIT ${limit}`,
        values,
      }),
    );
    return { files: rows.slice(0, query.limit).map(fromRecord), hasMore: rows.length > query.limit };
  }

  /**
   * Takes the owner's visible file out of view and releases its bytes from the owner's usage in
   * one transaction. Returns null when there is no such visible file.
   */
  async tombstone(ownerId: string, uuid: string, now: Date): Promise<Tombstone | null> {
    return this.run(() =>
      this.db.prisma.$transaction(async (tx) => {
        const rows = await tx.$queryRaw<{ id: string; owner_id: string; bytes: bigint }[]>`
          UPDATE files SET state = 'deleting', heartbeat_at = ${now}
          WHERE id = ${uuid}::uuid AND owner_id = ${ownerId} AND state = 'ready' AND expires_at > ${now}
          RETURNING id::text, owner_id, bytes`;
        if (rows.length === 0) return null;
        await this.release(tx, ownerId, rows[0].bytes, now);
        return toTombstone(rows[0]);
      }, TX_OPTIONS),
    );
  }

  /**
   * Tombstones up to `limit` expired files of any owner (skipping rows another transaction holds)
   * and releases their bytes, in one transaction. Each file is tombstoned exactly once, however
   * many sweepers run. `= ANY(ARRAY(…))` makes the outer UPDATE look rows up by primary key;
   * `IN (…)` let the planner scan the whole table for large batches.
   */
  async tombstoneExpired(limit: number, now: Date): Promise<Tombstone[]> {
    return this.run(() =>
      this.db.prisma.$transaction(async (tx) => {
        const rows = await tx.$queryRaw<{ id: string; owner_id: string; bytes: bigint }[]>`
          UPDATE files SET state = 'deleting', heartbeat_at = ${now}
          WHERE id = ANY(ARRAY(
            SELECT id FROM files WHERE state = 'ready' AND expires_at <= ${now}
            ORDER BY expires_at LIMIT ${limit} FOR UPDATE SKIP LOCKED))
          RETURNING id::text, owner_id, bytes`;
        const byOwner = new Map<string, bigint>();
        for (const row of rows) byOwner.set(row.owner_id, (byOwner.get(row.owner_id) ?? 0n) + row.bytes);
        // Sorted, so concurrent transactions lock usage rows in the same order (no deadlocks).
        for (const owner of [...byOwner.keys()].sort()) await this.release(tx, owner, byOwner.get(owner)!, now);
        return rows.map(toTombstone);
      }, TX_OPTIONS),
    );
  }

  /** Tombstones whose bytes nobody is deleting any more (last touched before `staleBefore`). */
  async findStaleTombstones(staleBefore: Date, limit: number): Promise<Tombstone[]> {
    const rows = await this.run(() =>
      this.db.prisma.file.findMany({
        where: { state: 'deleting', heartbeatAt: { lt: staleBefore } },
        orderBy: { heartbeatAt: 'asc' },
        take: limit,
        select: { id: true, ownerId: true, bytes: true },
      }),
    );
    return rows.map((r) => toTombstone({ id: r.id, owner_id: r.ownerId, bytes: r.bytes }));
  }

  /** Forgets a tombstone once its bytes are gone. */
  async deleteTombstone(uuid: string): Promise<void> {
    await this.run(() => this.db.prisma.file.deleteMany({ where: { id: uuid, state: 'deleting' } }));
  }

  async ping(): Promise<void> {
    await this.run(() => this.db.ping());
  }

  private async tombstoneExpiredOf(tx: Tx, ownerId: string, now: Date): Promise<Tombstone[]> {
    const rows = await tx.$queryRaw<{ id: string; owner_id: string; bytes: bigint }[]>`
      UPDATE files SET state = 'deleting', heartbeat_at = ${now}
      WHERE owner_id = ${ownerId} AND state = 'ready' AND expires_at <= ${now}
      RETURNING id::text, owner_id, bytes`;
    return rows.map(toTombstone);
  }

  private async release(tx: Tx, ownerId: string, bytes: bigint, now: Date): Promise<void> {
    if (bytes === 0n) return;
    await tx.$executeRaw`
      UPDATE owner_usage SET used_bytes = used_bytes - ${bytes}, updated_at = ${now} WHERE owner_id = ${ownerId}`;
  }

  /** Runs a query, turning connectivity failures into DatabaseUnavailableError. */
  private run<T>(operation: () => Promise<T>): Promise<T> {
    return guardDatabase(operation);
  }

  /**
   * Forgets many tombstones whose bytes are gone, in one statement (set-based, for the sweeper's
   * batches); ids that are not tombstones (any more) are left alone. Returns how many were deleted.
   */
  async deleteTombstones(uuids: readonly string[]): Promise<number> {
    if (uuids.length === 0) return 0;
    return this.run(
      () => this.db.prisma.$executeRaw`
        DELETE FROM files WHERE id = ANY(${uuids}::uuid[]) AND state = 'deleting'`,
    );
  }
}

function toStoredFile(row: FileRow): StoredFile {
  if (row.state !== 'ready' || row.purpose === null || row.expiresAt === null) {
    throw new Error(`file ${row.id} is not committed`);
  }
  return {
    id: fileIdFromUuid(row.id).publicId,
    ownerId: row.ownerId,
    purpose: row.purpose,
    filename: row.filename,
    bytes: Number(row.bytes),
    sha256: row.sha256,
    createdAt: row.createdAt,
    expiresAt: row.expiresAt,
  };
}

/** A `files` row as the prepared read statements return it. */
interface FileRecord {
  id: string;
  owner_id: string;
  state: string;
  purpose: string | null;
  filename: string;
  bytes: string;
  sha256: string | null;
  created_at: Date;
  expires_at: Date | null;
}

const FILE_COLUMNS = 'id::text AS id, owner_id, state::text AS state, purpose, filename, bytes::text AS bytes, sha256, created_at, expires_at';

function fromRecord(row: FileRecord): StoredFile {
  if (row.state !== 'ready' || row.purpose === null || row.expires_at === null) throw new Error(`file ${row.id} is not committed`);
  return {
    id: fileIdFromUuid(row.id).publicId,
    ownerId: row.owner_id,
    purpose: row.purpose,
    filename: row.filename,
    bytes: Number(row.bytes),
    sha256: row.sha256,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
  };
}

function toTombstone(row: { id: string; owner_id: string; bytes: bigint }): Tombstone {
  return { uuid: row.id, publicId: fileIdFromUuid(row.id).publicId, ownerId: row.owner_id, bytes: Number(row.bytes) };
}
