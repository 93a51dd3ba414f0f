import { Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { Clock } from '../../common/clock';
import { PeriodicTask } from '../../common/periodic-task';
import { FilesDatabase } from '../../database/files-database';
import { parseFileId } from '../file-id';
import { FilesMetrics } from '../files.metrics';
import { FilesInstance } from '../files.instance';
import { FilesModuleOptions } from '../files.options';
import { FilesRepository, type Tombstone } from '../files.repository';
import { FileStorage, type IncompleteUpload, type StoredObjectInfo } from '../storage/file-storage';
import { FILE_KEY_PREFIX, publicIdFromKey, storageKeyFor } from '../storage/storage-key';
import { type ReadyRow, ReconcileRepository, type UsageDrift } from './reconcile.repository';

export interface ReconcileReport {
  /** False when another instance held the lock and nothing was examined. */
  ran: boolean;
  /** Whether fixes were applied (false: a dry run that only reports). */
  repaired: boolean;
  /** Pending uploads whose writer died: bytes and row removed. */
  stalePending: number;
  /** Incomplete writes (open S3 multipart uploads, partial files) nobody is finishing: aborted. */
  abortedUploads: number;
  /** Objects under files/ with no row at all: deleted. */
  orphanObjects: number;
  /** Ready rows whose object is missing: taken out of view and off usage (data loss, logged as an error). */
  lostObjects: number;
  /** Ready rows whose object size differs from the row: reported, never touched. */
  sizeMismatches: number;
  /** Owners whose usage total differs from their files (repaired only by the audit command). */
  usageDrift: UsageDrift[];
  /** Individual fixes that failed; retried next run. */
  failed: number;
  /**
   * Why orphan and lost-file repairs were withheld, or null. Set when they would touch so much
   * of the data that a misconfiguration (wrong database, unmounted volume, wrong bucket) is far
   * likelier than real damage; nothing is deleted then, and the audit command's --force overrides.
   */
  withheld: string | null;
}

/** Advisory lock id of the reconciler ("files-rc"); one replica reconciles at a time. */
export const RECONCILE_LOCK_ID = 0x66696c65_732d7263n;
const BATCH = 500;

/**
 * Finishes or undoes whatever a crash, an outage or a lost race left between PostgreSQL and
 * storage. Safety rules, in order of importance:
 * - never delete the bytes of a visible file: an object is deleted only when it has no row at
 *   all, or its row is a tombstone this run claimed;
 * - never disturb an upload in progress on any replica: pending rows count as alive while their
 *   heartbeat is fresh, and objects/incomplete uploads younger than the staleness window are left;
 * - every row change is conditional, so racing another replica or a request is harmless.
 */
@Injectable()
export class Reconciler implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(Reconciler.name);
  private readonly schedule: PeriodicTask;

  constructor(
    private readonly reconcileRepository: ReconcileRepository,
    private readonly files: FilesRepository,
    private readonly storage: FileStorage,
    private readonly database: FilesDatabase,
    private readonly clock: Clock,
    private readonly options: FilesModuleOptions,
    scheduler: SchedulerRegistry,
    private readonly metrics: FilesMetrics,
    instance: FilesInstance,
  ) {
    this.schedule = new PeriodicTask(scheduler, instance.scoped('reconcile'), this.logger, async () =>
      this.log(await this.reconcile({ repair: true })),
    );
  }

  onApplicationBootstrap(): void {
    if (this.options.jobs?.reconcile === false) return;
    this.schedule.start(this.options.reconcile.intervalSeconds);
  }

  async onModuleDestroy(): Promise<void> {
    await this.schedule.stop();
  }

  async runScheduled(): Promise<void> {
    await this.schedule.runOnce();
  }

  /**
   * One full pass, if no other instance is reconciling. `repair: false` only reports; `force`
   * repairs even what looks like mass damage (see ReconcileReport.withheld).
   */
  async reconcile(options: { repair: boolean; force?: boolean }): Promise<ReconcileReport> {
    const { acquired, result } = await this.database.withAdvisoryLock(RECONCILE_LOCK_ID, () =>
      this.pass(options.repair, options.force ?? false),
    );
    if (!acquired) return { ...emptyReport(options.repair), ran: false };
    this.metrics.recordReconcile(result!);
    return result!;
  }

  private async pass(repair: boolean, force: boolean): Promise<ReconcileReport> {
    const report = emptyReport(repair);
    const startedAt = this.clock.now();
    const staleBefore = new Date(startedAt.getTime() - this.options.reconcile.staleAfterSeconds * 1000);
    if (repair) await this.finishStalePending(staleBefore, startedAt, report);
    else report.stalePending = await this.reconcileRepository.countStalePending(staleBefore);
    await this.abortAbandonedUploads(staleBefore, report);

    const listed = new Map<string, StoredObjectInfo>();
    for await (const object of this.storage.list(FILE_KEY_PREFIX)) listed.set(object.key, object);
    const orphans = await this.findOrphanObjects(listed, staleBefore);
    const { lost, examined } = await this.findLostObjects(listed, startedAt, report);
    report.orphanObjects = orphans.length;
    report.lostObjects = lost.length;
    report.withheld = force ? null : massDamage(orphans.length, listed.size, lost.length, examined);
    if (report.withheld) {
      this.logger.error(`reconcile: repairs withheld: ${report.withheld}`);
    } else if (repair) {
      await this.deleteOrphans(orphans, report);
      for (const file of lost) await this.removeLost(file, report);
    }
    report.usageDrift = await this.reconcileRepository.usageDrift();
    return report;
  }

  private async finishStalePending(staleBefore: Date, now: Date, report: ReconcileReport): Promise<void> {
    for (;;) {
      const claimed = await this.reconcileRepository.claimStalePending(staleBefore, now, BATCH);
      for (const tombstone of claimed) {
        if (await this.purge(tombstone, report)) report.stalePending += 1;
      }
      if (claimed.length < BATCH) return;
    }
  }

  private async abortAbandonedUploads(staleBefore: Date, report: ReconcileReport): Promise<void> {
    const candidates: IncompleteUpload[] = [];
    for await (const upload of this.storage.listIncompleteUploads(FILE_KEY_PREFIX)) {
      if (upload.initiated < staleBefore) candidates.push(upload);
    }
    for (let i = 0; i < candidates.length; i += BATCH) {
      const batch = candidates.slice(i, i + BATCH);
      const alive = await this.reconcileRepository.inProgress(uuidsOf(batch.map((u) => u.key)), staleBefore);
      for (const upload of batch) {
        const uuid = uuidOfKey(upload.key);
        if (uuid === null) {
          this.logger.warn(`ignoring incomplete upload to ${upload.key}: not a key this service writes`);
          continue;
        }
        if (alive.has(uuid)) continue;
        if (!report.repaired) {
          report.abortedUploads += 1;
          continue;
        }
        try {
          await this.storage.abortIncompleteUpload(upload);
          report.abortedUploads += 1;
        } catch (error) {
          report.failed += 1;
          this.logger.warn(`could not abort incomplete upload to ${upload.key}: ${(error as Error).message}`);
        }
      }
    }
  }

  /** Keys of old objects that have no row (checked again with HEAD: the listing is a snapshot). */
  private async findOrphanObjects(listed: Map<string, StoredObjectInfo>, staleBefore: Date): Promise<string[]> {
    const orphans: string[] = [];
    const old = [...listed.values()].filter((o) => o.lastModified < staleBefore);
    for (let i = 0; i < old.length; i += BATCH) {
      const batch = old.slice(i, i + BATCH);
      const known = await this.reconcileRepository.existing(uuidsOf(batch.map((o) => o.key)));
      for (const object of batch) {
        const uuid = uuidOfKey(object.key);
        if (uuid === null) {
          this.logger.warn(`ignoring object ${object.key}: not a key this service writes`);
          continue;
        }
        if (known.has(uuid)) continue;
        // A file deleted since the listing (bytes first, then row, by a request or a sweeper on
        // any replica) looks like an orphan here; only bytes still there without a row are one.
        if ((await this.storage.head(object.key)) !== null) orphans.push(object.key);
      }
    }
    return orphans;
  }

  /** Deletes orphans (HEAD-confirmed by findOrphanObjects) in batches, one storage call each. */
  private async deleteOrphans(orphans: string[], report: ReconcileReport): Promise<void> {
    for (let i = 0; i < orphans.length; i += BATCH) {
      const batch = orphans.slice(i, i + BATCH);
      try {
        // A row may have appeared since (it never does for a key of ours, but be sure).
        const known = await this.reconcileRepository.existing(uuidsOf(batch));
        const { failed } = await this.storage.deleteMany(batch.filter((key) => !known.has(uuidOfKey(key)!)));
        report.failed += failed.length;
        for (const f of failed) this.logger.warn(`could not delete orphan object ${f.key}: ${f.error.message}`);
      } catch (error) {
        report.failed += batch.length;
        this.logger.warn(`could not delete ${batch.length} orphan objects: ${(error as Error).message}`);
      }
    }
  }

  /**
   * Ready rows committed before the listing began whose object is missing (confirmed with HEAD);
   * size mismatches are counted and logged on the way. Also returns how many rows were examined.
   */
  private async findLostObjects(
    listed: Map<string, StoredObjectInfo>,
    listingStartedAt: Date,
    report: ReconcileReport,
  ): Promise<{ lost: ReadyRow[]; examined: number }> {
    const lost: ReadyRow[] = [];
    let examined = 0;
    let after: string | undefined;
    for (;;) {
      const rows = await this.reconcileRepository.readyPage(after, listingStartedAt, BATCH);
      examined += rows.length;
      for (const row of rows) {
        const key = storageKeyFor(row.publicId);
        const object = listed.get(key) ?? (await this.storage.head(key));
        if (object === null) {
          lost.push(row);
          this.logger.error(`file ${row.publicId}: its bytes are missing from storage`);
        } else if (object.size !== row.bytes) {
          report.sizeMismatches += 1;
          this.logger.error(`file ${row.publicId}: stored object has ${object.size} bytes, metadata says ${row.bytes}`);
        }
      }
      if (rows.length < BATCH) return { lost, examined };
      after = rows[rows.length - 1].uuid;
    }
  }

  /** Takes a file whose bytes are gone out of view and off its owner's usage, then forgets it. */
  private async removeLost(file: ReadyRow, report: ReconcileReport): Promise<void> {
    // One file's failure (e.g. its owner's usage drifted below its size, so the release would
    // break the usage >= 0 check) must not stop the rest of the pass.
    try {
      if ((await this.storage.head(storageKeyFor(file.publicId))) !== null) return;
      if (await this.reconcileRepository.tombstoneLost(file.uuid, this.clock.now())) {
        await this.files.deleteTombstone(file.uuid);
      }
    } catch (error) {
      report.failed += 1;
      this.logger.warn(`could not remove file ${file.publicId} with lost bytes: ${(error as Error).message}`);
    }
  }

  /** Deletes a claimed tombstone's bytes, then its row. */
  private async purge(tombstone: Tombstone, report: ReconcileReport): Promise<boolean> {
    try {
      await this.storage.delete(storageKeyFor(tombstone.publicId));
      await this.files.deleteTombstone(tombstone.uuid);
      return true;
    } catch (error) {
      report.failed += 1;
      this.logger.warn(`could not remove abandoned upload ${tombstone.publicId}: ${(error as Error).message}`);
      return false;
    }
  }

  private log(report: ReconcileReport): void {
    const fixed = report.stalePending + report.abortedUploads + report.orphanObjects + report.lostObjects;
    if (fixed + report.failed + report.sizeMismatches + report.usageDrift.length === 0) return;
    const entry = { message: 'reconcile', ...report };
    if (report.lostObjects + report.sizeMismatches + report.usageDrift.length > 0) this.logger.error(entry);
    else this.logger.log(entry);
  }
}

function emptyReport(repaired: boolean): ReconcileReport {
  return {
    ran: true,
    repaired,
    stalePending: 0,
    abortedUploads: 0,
    orphanObjects: 0,
    lostObjects: 0,
    sizeMismatches: 0,
    usageDrift: [],
    failed: 0,
    withheld: null,
  };
}

/**
 * Deleting most of what exists is never what a crash leaves behind; it is what a wrong
 * DATABASE_URL (every object "has no row"), an unmounted volume or a wrong bucket (every file
 * "lost its bytes") looks like. Two or more such findings that are the majority of their
 * population withhold those repairs.
 */
export function massDamage(orphans: number, objects: number, lost: number, files: number): string | null {
  if (orphans >= 2 && orphans * 2 > objects) {
    return `${orphans} of ${objects} stored objects have no metadata: is DATABASE_URL the right database?`;
  }
  if (lost >= 2 && lost * 2 > files) {
    return `${lost} of ${files} files have no bytes in storage: is the storage (bucket, volume) the right one and reachable?`;
  }
  return null;
}

function uuidOfKey(key: string): string | null {
  const publicId = publicIdFromKey(key);
  return publicId === null ? null : (parseFileId(publicId)?.uuid ?? null);
}

function uuidsOf(keys: string[]): string[] {
  return keys.map(uuidOfKey).filter((u): u is string => u !== null);
}
