import { Logger, type OnApplicationShutdown } from '@nestjs/common';
import { PrismaPg } from '@prisma/adapter-pg';
import { Pool } from 'pg';
import { PrismaClient } from '../generated/prisma/client';

export interface DatabaseOptions {
  url: string;
  poolMax: number;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
}

/**
 * The connection pool and the Prisma client over it. One pg pool serves both Prisma (through the
 * driver adapter) and the few things Prisma cannot do on a shared pool, such as session-level
 * advisory locks that must stay on one connection.
 */
export class FilesDatabase implements OnApplicationShutdown {
  private readonly logger = new Logger(FilesDatabase.name);
  readonly pool: Pool;
  readonly prisma: PrismaClient;
  private closed = false;

  constructor(options: DatabaseOptions) {
    this.pool = new Pool({
      connectionString: options.url,
      max: options.poolMax,
      connectionTimeoutMillis: options.connectTimeoutMs,
      idleTimeoutMillis: 30_000,
      // Server-side bounds so no query or forgotten transaction can hang a request forever.
      statement_timeout: options.statementTimeoutMs,
      idle_in_transaction_session_timeout: options.statementTimeoutMs * 2,
      // Client-side bound for when the server itself stops answering.
      query_timeout: options.statementTimeoutMs + 5_000,
      application_name: 'files-api',
      keepAlive: true,
    });
    // An idle client losing its connection must not crash the process; the next query reconnects.
    this.pool.on('error', (error) => this.logger.warn(`idle database connection lost: ${error.message}`));
    this.prisma = new PrismaClient({ adapter: new PrismaPg(this.pool) });
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  /**
   * Runs `task` while holding the session-level advisory lock `lockId`, or returns
   * `{ acquired: false }` at once if another session holds it. The lock lives on one dedicated
   * connection and dies with it, so a crashed holder never blocks the others.
   */
  async withAdvisoryLock<T>(lockId: bigint, task: () => Promise<T>): Promise<{ acquired: boolean; result?: T }> {
    const client = await this.pool.connect();
    // A connection whose lock queries failed may still hold the lock: destroy it rather than
    // return it to the pool, which releases the lock server-side.
    let broken = false;
    try {
      const { rows } = await client
        .query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [lockId.toString()])
        .catch((error: unknown) => {
          broken = true;
          throw error;
        });
      if (!rows[0]?.locked) return { acquired: false };
      try {
        return { acquired: true, result: await task() };
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [lockId.toString()]).catch((error: Error) => {
          broken = true;
          this.logger.warn(`advisory unlock failed, dropping the connection: ${error.message}`);
        });
      }
    } finally {
      client.release(broken);
    }
  }

  /**
   * The last shutdown hook: background jobs (stopped in onModuleDestroy) and uploads in progress
   * (drained in beforeApplicationShutdown) have finished with the pool by now.
   */
  async onApplicationShutdown(): Promise<void> {
    await this.close();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.prisma.$disconnect();
    await this.pool.end();
  }
}
