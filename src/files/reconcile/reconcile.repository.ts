import { Injectable } from '@nestjs/common';
import { guardDatabase } from '../../database/database-errors';
import { FilesDatabase } from '../../database/files-database';
import { fileIdFromUuid } from '../file-id';
import type { Tombstone } from '../files.repository';

export interface UsageDrift {
  ownerId: string;
  /** What owner_usage says. */
  recorded: number;
  /** Sum of the owner's ready files. */
  actual: number;
}

export interface ReadyRow {
  uuid: string;
  publicId: string;
  bytes: number;
}

const TX_OPTIONS = { maxWait: 5_000, timeout: 30_000 } as const;

/** Cross-owner queries for the reconciler and the audit command (never used by API requests). */
@Injectable()
export class ReconcileRepository {
  constructor(private readonly db: FilesDatabase) {}

  /**
   * Claims pending uploads whose writer stopped proving it is alive by deleting their rows, so a
   * writer that was merely slow can no longer commit (its commit requires its `pending` row).
   * Pending rows are never charged, so no usage changes. Their rows are removed rather than turned
   * into tombstones: a `deleting` row must be complete (purpose, expires_at: the
   * files_ready_complete_check constraint), which an upload that never finished is not. Bytes the
   * caller then fails to delete are an object without a row, which the orphan sweep removes.
   */
  async claimStalePending(staleBefore: Date, _now: Date, limit: number): Promise<Tombstone[]> {
    const rows = await guardDatabase(
      () => this.db.prisma.$queryRaw<{ id: string; owner_id: string; bytes: bigint }[]>`
        DELETE FROM files
        WHERE id IN (
          SELECT id FROM files WHERE state = 'pending' AND heartbeat_at < ${staleBefore}
          ORDER BY heartbeat_at LIMIT ${limit} FOR UPDATE SKIP LOCKED)
        RETURNING id::text, owner_id, bytes`,
    );
    return rows.map((r) => ({ uuid: r.id, publicId: fileIdFromUuid(r.id).publicId, ownerId: r.owner_id, bytes: Number(r.bytes) }));
  }

  async countStalePending(staleBefore: Date): Promise<number> {
    return guardDatabase(() => this.db.prisma.file.count({ where: { state: 'pending', heartbeatAt: { lt: staleBefore } } }));
  }

  /** Which of these ids have a row, in any state. */
  async existing(uuids: string[]): Promise<Set<string>> {
    if (uuids.length === 0) return new Set();
    const rows = await guardDatabase(() =>
      this.db.prisma.file.findMany({ where: { id: { in: uuids } }, select: { id: true } }),
    );
    return new Set(rows.map((r) => r.id));
  }

  /** Which of these ids are uploads in progress (pending, heartbeat at or after `aliveSince`). */
  async inProgress(uuids: string[], aliveSince: Date): Promise<Set<string>> {
    if (uuids.length === 0) return new Set();
    const rows = await guardDatabase(() =>
      this.db.prisma.file.findMany({
        where: { id: { in: uuids }, state: 'pending', heartbeatAt: { gte: aliveSince } },
        select: { id: true },
      }),
    );
    return new Set(rows.map((r) => r.id));
  }

  /** One keyset page of ready rows committed before `committedBefore`, in id order. */
  async readyPage(afterUuid: string | undefined, committedBefore: Date, limit: number): Promise<ReadyRow[]> {
    const rows = await guardDatabase(() =>
      this.db.prisma.file.findMany({
        where: {
          state: 'ready',
          heartbeatAt: { lt: committedBefore },
          ...(afterUuid === undefined ? {} : { id: { gt: afterUuid } }),
        },
        orderBy: { id: 'asc' },
        take: limit,
        select: { id: true, bytes: true },
      }),
    );
    return rows.map((r) => ({ uuid: r.id, publicId: fileIdFromUuid(r.id).publicId, bytes: Number(r.bytes) }));
  }

  /**
   * A ready file whose bytes are gone: takes it out of view and off its owner's usage, in one
   * transaction (conditional on it still being ready). Returns false if someone else got there.
   */
  async tombstoneLost(uuid: string, now: Date): Promise<boolean> {
    return guardDatabase(() =>
      this.db.prisma.$transaction(async (tx) => {
        const rows = await tx.$queryRaw<{ owner_id: string; bytes: bigint }[]>`
          UPDATE files SET state = 'deleting', heartbeat_at = ${now}
          WHERE id = ${uuid}::uuid AND state = 'ready' RETURNING owner_id, bytes`;
        if (rows.length === 0) return false;
        await tx.$executeRaw`
          UPDATE owner_usage SET used_bytes = used_bytes - ${rows[0].bytes}, updated_at = ${now}
          WHERE owner_id = ${rows[0].owner_id}`;
        return true;
      }, TX_OPTIONS),
    );
  }

  /** Owners whose recorded usage differs from the sum of their ready files. */
  async usageDrift(): Promise<UsageDrift[]> {
    const rows = await guardDatabase(
      () => this.db.prisma.$queryRaw<{ owner_id: string; recorded: bigint; actual: bigint }[]>`
        SELECT COALESCE(u.owner_id, s.owner_id) AS owner_id,
               COALESCE(u.used_bytes, 0)::bigint AS recorded,
               COALESCE(s.total, 0)::bigint AS actual
        FROM owner_usage u
        FULL JOIN (SELECT owner_id, SUM(bytes) AS total FROM files WHERE state = 'ready' GROUP BY owner_id) s
          ON s.owner_id = u.owner_id
        WHERE COALESCE(u.used_bytes, 0) <> COALESCE(s.total, 0)
        ORDER BY 1`,
    );
    return rows.map((r) => ({ ownerId: r.owner_id, recorded: Number(r.recorded), actual: Number(r.actual) }));
  }

  /**
   * Sets each drifting owner's usage to the sum of its ready files. The usage row is locked first,
   * so a concurrent commit or delete (which updates the same row) is ordered before or after the
   * recount, never lost inside it.
   */
  async repairUsage(ownerId: string, now: Date): Promise<{ before: number; after: number }> {
    return guardDatabase(() =>
      this.db.prisma.$transaction(async (tx) => {
        await tx.$executeRaw`
          INSERT INTO owner_usage (owner_id, used_bytes, updated_at) VALUES (${ownerId}, 0, ${now})
          ON CONFLICT (owner_id) DO NOTHING`;
        const [locked] = await tx.$queryRaw<{ used_bytes: bigint }[]>`
          SELECT used_bytes FROM owner_usage WHERE owner_id = ${ownerId} FOR UPDATE`;
        const [sum] = await tx.$queryRaw<{ total: bigint }[]>`
          SELECT COALESCE(SUM(bytes), 0)::bigint AS total FROM files WHERE owner_id = ${ownerId} AND state = 'ready'`;
        await tx.$executeRaw`
          UPDATE owner_usage SET used_bytes = ${sum.total}, updated_at = ${now} WHERE owner_id = ${ownerId}`;
        return { before: Number(locked.used_bytes), after: Number(sum.total) };
      }, TX_OPTIONS),
    );
  }

  /** Row counts by state, for the audit report. */
  async countByState(): Promise<Record<string, number>> {
    const rows = await guardDatabase(() => this.db.prisma.file.groupBy({ by: ['state'], _count: { _all: true } }));
    return Object.fromEntries(rows.map((r) => [r.state, r._count._all]));
  }
}
