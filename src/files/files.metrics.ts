import { Injectable } from '@nestjs/common';
import type { SweepReport } from './expiry/expiry.sweeper';
import type { ReconcileReport } from './reconcile/reconciler';

type Counter =
  | 'expiry_files_expired'
  | 'expiry_files_purged'
  | 'expiry_failures'
  | 'reconcile_runs'
  | 'reconcile_stale_pending'
  | 'reconcile_aborted_uploads'
  | 'reconcile_orphan_objects'
  | 'reconcile_lost_objects'
  | 'reconcile_size_mismatches'
  | 'reconcile_failures'
  | 'reconcile_withheld';

const HELP: Record<Counter, string> = {
  expiry_files_expired: 'Files that expired and were taken off their owners usage.',
  expiry_files_purged: 'Tombstoned files whose bytes and rows were removed.',
  expiry_failures: 'Removals the expiry sweep could not finish (retried).',
  reconcile_runs: 'Reconciler passes run by this instance.',
  reconcile_stale_pending: 'Abandoned pending uploads removed.',
  reconcile_aborted_uploads: 'Incomplete storage writes aborted.',
  reconcile_orphan_objects: 'Stored objects without metadata deleted.',
  reconcile_lost_objects: 'Files whose bytes were missing from storage.',
  reconcile_size_mismatches: 'Files whose stored size differs from their metadata.',
  reconcile_failures: 'Reconciler fixes that failed (retried).',
  reconcile_withheld: 'Reconciler passes that withheld repairs because they looked like mass damage.',
};

/**
 * Counters of what the background jobs fixed, since this process started, exposed in the
 * Prometheus text format by the host (GET /metrics in the standalone service).
 */
@Injectable()
export class FilesMetrics {
  private readonly counters = new Map<Counter, number>();

  recordSweep(report: SweepReport): void {
    this.add('expiry_files_expired', report.expired);
    this.add('expiry_files_purged', report.purged);
    this.add('expiry_failures', report.failed);
  }

  recordReconcile(report: ReconcileReport): void {
    this.add('reconcile_runs', 1);
    if (!report.repaired) return;
    this.add('reconcile_stale_pending', report.stalePending);
    this.add('reconcile_aborted_uploads', report.abortedUploads);
    if (report.withheld) this.add('reconcile_withheld', 1);
    else {
      this.add('reconcile_orphan_objects', report.orphanObjects);
      this.add('reconcile_lost_objects', report.lostObjects);
    }
    this.add('reconcile_size_mismatches', report.sizeMismatches);
    this.add('reconcile_failures', report.failed);
  }

  value(counter: Counter): number {
    return this.counters.get(counter) ?? 0;
  }

  /** Prometheus exposition format, counters named `files_api_<name>_total`. */
  render(): string {
    return (Object.keys(HELP) as Counter[])
      .map((name) => {
        const metric = `files_api_${name}_total`;
        return `# HELP ${metric} ${HELP[name]}\n# TYPE ${metric} counter\n${metric} ${this.value(name)}\n`;
      })
      .join('');
  }

  private add(counter: Counter, n: number): void {
    if (n > 0) this.counters.set(counter, this.value(counter) + n);
  }
}
