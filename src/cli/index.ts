import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createLogger } from '../bootstrap';
import { ConfigError } from '../config/app-config';
import { DatabaseUnavailableError } from '../files/files.errors';
import { EXIT, UsageError } from './cli-support';

// Each command is loaded only when it runs: `keys` needs neither NestFactory nor the S3 SDK the
// audit pulls in, and starts noticeably faster without them.
const commands = {
  keys: () => (require('./keys.command') as typeof import('./keys.command')).runKeysCommand,
  migrate: () => (require('./migrate') as typeof import('./migrate')).runMigrateCommand,
  audit: () => (require('./audit') as typeof import('./audit')).runAuditCommand,
};

const USAGE = `usage: npm run cli -- <command> [options]      (or: node dist/cli/index.js <command> …)

commands:
  keys create --owner <owner> [--name <name>] [--json]   create a managed API key (printed once)
  keys list [--owner <owner>] [--all] [--json]            list managed API keys (never the keys)
  keys revoke <id> [--json]                               revoke a managed API key
  migrate                                                 apply prisma/migrations to DATABASE_URL
  audit [--repair [--force]] [--json]                     compare PostgreSQL, storage and usage

\`npm run cli -- <command> --help\` describes a command.
Exit status: 0 success, 1 failure, 64 bad arguments, 78 invalid configuration (the variable
named). audit keeps its own: 0 consistent, 1 differences found, 2 could not run.`;

/** The audit's own status for "could not run" (its 1 already means "differences found"). */
const AUDIT_COULD_NOT_RUN = 2;

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case undefined:
      throw new UsageError('no command given: keys, migrate or audit (see --help)');
    case '--help':
    case '-h':
    case 'help':
      console.log(USAGE);
      return EXIT.ok;
    case 'keys':
      return commands.keys()(args);
    case 'migrate':
      return commands.migrate()(args);
    case 'audit':
      try {
        return await commands.audit()(args);
      } catch (error) {
        if (error instanceof UsageError || error instanceof ConfigError) throw error;
        Logger.error(`audit failed: ${(error as Error).message}`, (error as Error).stack, 'Audit');
        return AUDIT_COULD_NOT_RUN;
      }
    default:
      throw new UsageError(`unknown command "${command.slice(0, 40)}": use keys, migrate or audit (see --help)`);
  }
}

/** The exit status for an error a command threw, after saying what went wrong on stderr. */
function report(error: unknown): number {
  if (error instanceof UsageError) {
    console.error(error.message);
    return EXIT.usage;
  }
  if (error instanceof ConfigError) {
    console.error(error.message);
    return EXIT.config;
  }
  if (error instanceof DatabaseUnavailableError) {
    console.error(`database unavailable: ${lastLine(error.cause ?? error)}`);
    return EXIT.failure;
  }
  console.error(`failed: ${lastLine(error)}`);
  return EXIT.failure;
}

/** Prisma's messages quote the failing call over several lines; the cause is the last one. */
function lastLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n').map((line) => line.trim()).filter(Boolean).pop() ?? 'unknown error';
}

// Logs (pool warnings, the audit's findings) go to stderr: stdout is the commands' output.
Logger.overrideLogger(createLogger({ level: 'warn', format: 'text' }, { stderr: true }));
main(process.argv.slice(2))
  .catch(report)
  // Exit once stdout is flushed (a pipe to jq, a file), whatever handles are still open.
  .then((code) => process.stdout.write('', () => process.exit(code)));
