import { DatabaseUnavailableError, FilesError } from '../files/files.errors';

/**
 * Whether an error from Prisma or pg means "the database is unreachable or overloaded right now"
 * (answered with 503 and retried by clients) rather than a bug. Walks the cause chain, because
 * Prisma's driver adapters wrap the pg error.
 */
const PRISMA_UNAVAILABLE = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2028']);
const NODE_UNAVAILABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
// SQLSTATE classes 08 (connection exception), 53 (insufficient resources), 57 (operator
// intervention: shutdown, statement timeout), and 40001/40P01 are transient.
const SQLSTATE_UNAVAILABLE = /^(08|53|57)/;
const MESSAGE_UNAVAILABLE =
  /connection terminated|timeout exceeded when trying to connect|connection timeout|can't reach database|server closed the connection|terminating connection|query read timeout|the database system is (starting up|shutting down)|cannot connect now|transaction already closed|connect ECONNREFUSED/i;

export function isDatabaseUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const e = current as { code?: unknown; message?: unknown; cause?: unknown; originalCode?: unknown; kind?: unknown };
    const code = typeof e.code === 'string' ? e.code : typeof e.originalCode === 'string' ? e.originalCode : '';
    if (PRISMA_UNAVAILABLE.has(code) || NODE_UNAVAILABLE.has(code) || SQLSTATE_UNAVAILABLE.test(code)) return true;
    if (typeof e.message === 'string' && MESSAGE_UNAVAILABLE.test(e.message)) return true;
    if (e.kind === 'DatabaseNotReachable' || e.kind === 'ConnectionClosed' || e.kind === 'SocketTimeout') return true;
    current = e.cause;
  }
  return false;
}

/**
 * Runs a database operation, turning connectivity failures into DatabaseUnavailableError (503)
 * and letting everything else through unchanged.
 */
export async function guardDatabase<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (!(error instanceof FilesError) && isDatabaseUnavailable(error)) throw new DatabaseUnavailableError('database unavailable', { cause: error });
    throw error;
  }
}
