import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadConfig, type AppConfig } from '../config/app-config';

/** Exit statuses of `npm run cli` (sysexits.h for the last two). */
export const EXIT = {
  ok: 0,
  /** The command ran and failed (unknown id, database unreachable…). */
  failure: 1,
  /** Bad or missing arguments (EX_USAGE). */
  usage: 64,
  /** Invalid configuration, the variable named (EX_CONFIG), as the service itself exits. */
  config: 78,
} as const;

/** Bad or missing arguments: the message is one line, printed to stderr, exit 64. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Whether the arguments ask for help, wherever `--help`/`-h` appears. */
export function wantsHelp(args: string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}

/** `util.parseArgs`, strict, with its errors turned into one-line UsageErrors. */
export function parseCommandArgs<T extends ParseArgsConfig & { strict?: true }>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs<T>({ strict: true, ...config });
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new UsageError(message);
  }
}

/**
 * The database settings of commands that need nothing else: only DATABASE_URL is read (validated
 * as the service validates it); everything else keeps its default.
 */
export function databaseConfigFrom(env: NodeJS.ProcessEnv): AppConfig['database'] {
  return loadConfig({ DATABASE_URL: env.DATABASE_URL }).database;
}
