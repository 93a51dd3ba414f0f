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
import { FileStorage } from '../storage/file-storage';
import { storageKeyFor } from '../storage/storage-key';

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

/**
 * Removes expired files. Each batch tombstones expired rows and releases their owners' usage in
 * one transaction (exactly once, whoever runs it), then deletes bytes and rows one by one; a
 * failure on one file is logged and retried on a later run. Also finishes tombstones that a
 * crashed or failed delete left behind.
 */
@Injectable()
export class ExpirySweeper implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(ExpirySweeper.name);
  private readonly schedule: PeriodicTask;

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
    for (let batch = 0; batch < MAX_BATCHES_PER_RUN; batch++) {
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

  private async purgeAll(tombstones: Tombstone[], report: SweepReport): Promise<void> {
    for (const tombstone of tombstones) {
      try {
        await this.storage.delete(storageKeyFor(tombstone.publicId));
        await this.repository.deleteTombstone(tombstone.uuid);
        report.purged += 1;
      } catch (error) {
        report.failed += 1;
        this.logger.warn(`could not remove ${tombstone.publicId}, will retry: ${(error as Error).message}`);
      }
    }
  }
}
