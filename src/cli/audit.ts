import { Logger, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { filesOptionsFrom } from '../app.module';
import { createLogger } from '../bootstrap';
import { type AppConfig, ConfigError, loadConfig } from '../config/app-config';
import { ExpirySweeper } from '../files/expiry/expiry.sweeper';
import { FilesModule } from '../files/files.module';
import { ReconcileRepository } from '../files/reconcile/reconcile.repository';
import { type ReconcileReport, Reconciler } from '../files/reconcile/reconciler';
import { Clock } from '../common/clock';
import { UsageError } from './cli-support';

export const AUDIT_USAGE = `usage: npm run audit -- [--repair [--force]] [--json]
       npm run cli -- audit [--repair [--force]] [--json]

Compares PostgreSQL with storage and each owner's usage total with the sum of their files, and
prints every difference. Exit status: 0 when consistent (or repaired), 1 when differences remain,
2 when the audit could not run (\`npm run cli -- audit\`: 64 for bad options, 78 for bad
configuration). Reads the same environment as the service, API_KEYS aside. Uploads younger than FILES_PENDING_STALE_SECONDS count as in
progress and are left alone. Safe to run while the service serves traffic.

  --repair  fix what it finds: remove abandoned uploads and orphan objects, abort incomplete
            uploads, finish pending deletions, take files with lost bytes out of view, and set
            each owner's usage to the sum of their files. Deleting orphan objects and files
            with lost bytes is withheld when they make up half of everything (a wrong
            DATABASE_URL, bucket or unmounted volume looks like that)
  --force   with --repair: repair even then
  --json    print the reports as JSON`;

interface AuditResult {
  before: AuditFindings;
  repaired?: { sweep: unknown; usage: { ownerId: string; before: number; after: number }[] };
  after?: AuditFindings;
}

type AuditFindings = ReconcileReport & { rowsByState: Record<string, number> };

/**
 * Runs the audit with `argv` (options only). Returns the exit status (0 consistent, 1 differences);
 * throws UsageError on bad options, ConfigError on bad configuration, anything else when it could
 * not run.
 */
export async function runAuditCommand(argv: string[]): Promise<number> {
  const args = new Set(argv);
  if (args.has('--help') || args.has('-h')) {
    console.log(AUDIT_USAGE);
    return 0;
  }
  for (const arg of args) {
    if (!['--repair', '--force', '--json'].includes(arg)) throw new UsageError(`unknown option ${arg} (see --help)`);
  }
  if (args.has('--force') && !args.has('--repair')) throw new UsageError('--force needs --repair (see --help)');
  const config = loadConfig(process.env);
  const context = await NestFactory.createApplicationContext(AuditModule.with(config), {
    logger: createLogger({ ...config.log, level: 'warn' }, { stderr: true }),
  });
  try {
    const reconciler = context.get(Reconciler);
    const repository = context.get(ReconcileRepository);
    const findings = async (): Promise<AuditFindings> => {
      const report = await reconciler.reconcile({ repair: false });
      if (!report.ran) throw new Error('another instance is reconciling right now; retry in a moment');
      return { ...report, rowsByState: await repository.countByState() };
    };
    const result: AuditResult = { before: await findings() };
    if (args.has('--repair')) {
      // Usage first: taking a file with lost bytes off a usage that drifted below its size would
      // break the usage >= 0 check. Every later fix moves usage and files together.
      const usage = [];
      for (const drift of await repository.usageDrift()) {
        usage.push({ ownerId: drift.ownerId, ...(await repository.repairUsage(drift.ownerId, context.get(Clock).now())) });
      }
      const fixed = await reconciler.reconcile({ repair: true, force: args.has('--force') });
      if (!fixed.ran) throw new Error('another instance is reconciling right now; retry in a moment');
      const sweep = await context.get(ExpirySweeper).sweep();
      result.repaired = { sweep, usage };
      result.after = await findings();
    }
    print(result, args.has('--json'));
    return differences(result.after ?? result.before) === 0 ? 0 : 1;
  } finally {
    await context.close();
  }
}

function differences(f: AuditFindings): number {
  return (f.withheld ? 1 : 0) + f.stalePending + f.abortedUploads + f.orphanObjects + f.lostObjects + f.sizeMismatches + f.usageDrift.length;
}

function print(result: AuditResult, json: boolean): void {
  if (json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  const show = (title: string, f: AuditFindings) => {
    console.log(`${title}`);
    console.log(`  rows by state:           ${JSON.stringify(f.rowsByState)}`);
    console.log(`  abandoned pending rows:  ${f.stalePending}`);
    console.log(`  incomplete uploads:      ${f.abortedUploads}`);
    console.log(`  orphan objects:          ${f.orphanObjects}`);
    console.log(`  files with lost bytes:   ${f.lostObjects}`);
    console.log(`  size mismatches:         ${f.sizeMismatches}`);
    console.log(`  usage drift:             ${f.usageDrift.length}`);
    for (const d of f.usageDrift) console.log(`    ${d.ownerId}: recorded ${d.recorded}, actual ${d.actual}`);
    if (f.withheld) console.log(`  repairs withheld:        ${f.withheld} (--repair --force overrides)`);
  };
  show('audit:', result.before);
  if (result.repaired) {
    console.log(`repaired: expiry sweep ${JSON.stringify(result.repaired.sweep)}; usage fixed for ${result.repaired.usage.length} owner(s)`);
    show('after repair:', result.after!);
  }
  console.log(differences(result.after ?? result.before) === 0 ? 'consistent' : 'DIFFERENCES FOUND');
}

/** FilesModule without HTTP traffic and without its schedules. */
@Module({})
class AuditModule {
  static with(config: AppConfig) {
    return {
      module: AuditModule,
      imports: [
        FilesModule.forRoot({ ...filesOptionsFrom(config), routes: false, jobs: false }),
      ],
    };
  }
}

/** `npm run audit`: every failure to run, bad options and configuration included, is status 2. */
if (require.main === module) {
  runAuditCommand(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: Error) => {
      if (error instanceof UsageError) console.error(`${error.message}\n${AUDIT_USAGE}`);
      else if (error instanceof ConfigError) console.error(error.message);
      else Logger.error(`audit failed: ${error.message}`, error.stack, 'Audit');
      process.exit(2);
    },
  );
}
