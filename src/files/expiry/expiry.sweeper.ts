import { Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { Clock } from '../../common/clock';
import { PeriodicTask } from '../../common/periodic-task';
import { FilesDatabase } from '../../database/files-database';
import { FilesEvents } from '../files.events';
import { FilesInstance } from '../files.instance';
import { FilesMetrics } from '../files.metrics';
import { FilesModuleOptions } from '../files.options';
import { FilesRepository, type Tombstone } from '../files.repository';
import { type DeleteManyResult, FileStorage } from '../storage/file-storage';
import { publicIdFromKey, storageKeyFor } from '../storage/storage-key';

export interface SweepReport {
  /** False when another instance held the lock and this run did nothing. */
  ran: boolean;
  /** Files that expired and were taken off their owners' usage in this run. */
  expired: number;
  /** Tombstones whose bytes and rows were removed (expired now, or left by earlier failures). */
  purged: number;
  /** Tombstones whose removal failed; they stay and are retried next run. */
  failed: number;
}

/** Advisory lock id of the expiry sweep ("files-ex" in ASCII); one replica sweeps at a time. */
export const EXPIRY_LOCK_ID = 0x66696c65_732d6578n;
/** Bound on one run, so a huge backlog is worked off over several runs, not in one long lock. */
const MAX_BATCHES_PER_RUN = 50;
/** Files named in one failure log line; the rest are counted. */
const MAX_FAILURES_LOGGED = 10;

/**
 * Removes expired files. Each batch tombstones expired rows and releases their owners' usage in
 * one transaction (exactly once, whoever runs it), then deletes the batch's bytes with one
 * storage call (S3 DeleteObjects) and their rows with one statement; a file whose bytes could not
 * be deleted is logged and retried on a later run. Also finishes tombstones that a crashed or
 * failed delete left behind.
 */
@Injectable()
export class ExpirySweeper implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(ExpirySweeper.name);
  private readonly schedule: PeriodicTask;
  /** Set on shutdown: a run in progress finishes its batch and stops, instead of its whole backlog. */
  private stopping = false;

  constructor(
    private readonly repository: FilesRepository,
    private readonly storage: FileStorage,
    private readonly database: FilesDatabase,
    private readonly clock: Clock,
    private readonly options: FilesModuleOptions,
    scheduler: SchedulerRegistry,
    private readonly metrics: FilesMetrics,
    private readonly events: FilesEvents,
    instance: FilesInstance,
  ) {
    this.schedule = new PeriodicTask(scheduler, instance.scoped('expiry-sweep'), this.logger, async () => {
      const report = await this.sweep();
      if (report.expired + report.purged + report.failed > 0) this.logger.log({ message: 'expiry sweep', ...report });
    });
  }

  onApplicationBootstrap(): void {
    if (this.options.jobs?.expiry === false) return;
    if (this.options.expiry.sweepIntervalSeconds <= 0) {
      this.logger.log('expiry sweep disabled (FILES_EXPIRY_SWEEP_INTERVAL_SECONDS=0)');
    }
    this.schedule.start(this.options.expiry.sweepIntervalSeconds);
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    await this.schedule.stop();
  }

  /** One scheduled run; overlapping ticks are skipped, errors are logged, never thrown. */
  async runScheduled(): Promise<void> {
    await this.schedule.runOnce();
  }

  /** Runs one sweep now if no other instance is sweeping. */
  async sweep(): Promise<SweepReport> {
    const { acquired, result } = await this.database.withAdvisoryLock(EXPIRY_LOCK_ID, () => this.sweepLocked());
    if (!acquired) return { ran: false, expired: 0, purged: 0, failed: 0 };
    this.metrics.recordSweep(result!);
    return result!;
  }

  private async sweepLocked(): Promise<SweepReport> {
    const report: SweepReport = { ran: true, expired: 0, purged: 0, failed: 0 };
    const { batchSize } = this.options.expiry;
    for (let batch = 0; batch < MAX_BATCHES_PER_RUN && !this.stopping; batch++) {
      const tombstones = await this.repository.tombstoneExpired(batchSize, this.clock.now());
      report.expired += tombstones.length;
      for (const gone of tombstones) this.events.emit('file.expired', { ownerId: gone.ownerId, fileId: gone.publicId });
      await this.purgeAll(tombstones, report);
      if (tombstones.length < batchSize) break;
    }
    // Tombstones older than a stale pending upload are orphans of a failed or crashed delete.
    const staleBefore = new Date(this.clock.now().getTime() - this.options.reconcile.staleAfterSeconds * 1000);
    await this.purgeAll(await this.repository.findStaleTombstones(staleBefore, batchSize), report);
    return report;
  }

  /**
   * Deletes a batch's bytes with one storage call and then the rows of the files whose bytes are
   * gone with one statement. A file whose bytes could not be deleted keeps its tombstone (and its
   * bytes), is counted as failed, and is retried by a later run once its tombstone is stale.
   */
  private async purgeAll(tombstones: Tombstone[], report: SweepReport): Promise<void> {
    if (tombstones.length === 0) return;
    const keys = tombstones.map((t) => storageKeyFor(t.publicId));
    let failed: DeleteManyResult['failed'];
    try {
      ({ failed } = await this.storage.deleteMany(keys));
    } catch (error) {
      failed = keys.map((key) => ({ key, error: error as Error }));
    }
    const failedKeys = new Set(failed.map((f) => f.key));
    const gone = tombstones.filter((_, i) => !failedKeys.has(keys[i]));
    report.failed += tombstones.length - gone.length;
    this.warnFailed(failed.map((f) => ({ publicId: publicIdFromKey(f.key) ?? f.key, error: f.error })));
    if (gone.length === 0) return;
    try {
      await this.repository.deleteTombstones(gone.map((t) => t.uuid));
      report.purged += gone.length;
    } catch (error) {
      // Bytes gone, rows kept: a later run deletes the (now missing, so harmless) bytes again.
      report.failed += gone.length;
      this.warnFailed(gone.map((t) => ({ publicId: t.publicId, error: error as Error })));
    }
  }

  /** One line per distinct error, naming a few files, so an outage does not flood the log. */
  private warnFailed(failures: { publicId: string; error: Error }[]): void {
    const byMessage = new Map<string, string[]>();
    for (const { publicId, error } of failures) {
      const ids = byMessage.get(error.message);
      if (ids) ids.push(publicId);
      else byMessage.set(error.message, [publicId]);
    }
    for (const [message, ids] of byMessage) {
      const more = ids.length > MAX_FAILURES_LOGGED ? ` and ${ids.length - MAX_FAILURES_LOGGED} more` : '';
      this.logger.warn(`could not remove ${ids.slice(0, MAX_FAILURES_LOGGED).join(', ')}${more}, will retry: ${message}`);
    }
  }
}
