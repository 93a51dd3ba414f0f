import type { INestApplicationContext } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';
import { SchedulerRegistry } from '@nestjs/schedule';
import { Client, Pool } from 'pg';
import { parseFileId } from '../../src/files/file-id';
import { FilesError } from '../../src/files/files.errors';
import { listKeys, listMultipartUploads, type TestBucket } from './backends';

/**
 * Helpers for tests of a host application embedding FilesModule: what a database and a bucket
 * hold, time travel for expiry, and what the host's Nest container scheduled.
 */

/** Everything an operation for `ownerId` could leave behind in one database and one bucket. */
export interface StoredState {
  rows: { id: string; state: string; bytes: string }[];
  usedBytes: number;
  /** Every object key in the bucket (all owners), sorted. */
  objects: string[];
  /** Open multipart uploads in the bucket (all owners). */
  multipartUploads: string[];
}

export async function storedState(pool: Pool, ownerId: string, bucket: TestBucket): Promise<StoredState> {
  const rows = await pool.query<{ id: string; state: string; bytes: string }>(
    'SELECT id::text, state::text, bytes::text FROM files WHERE owner_id = $1 ORDER BY id',
    [ownerId],
  );
  const usage = await pool.query<{ used_bytes: string }>('SELECT used_bytes::text FROM owner_usage WHERE owner_id = $1', [ownerId]);
  return {
    rows: rows.rows,
    usedBytes: Number(usage.rows[0]?.used_bytes ?? 0),
    objects: (await listKeys(bucket.client, bucket.settings.bucket)).sort(),
    multipartUploads: (await listMultipartUploads(bucket.client, bucket.settings.bucket)).map((u) => u.key).sort(),
  };
}

/** Moves a file's `expires_at` one second into the past, as if its lifetime had run out. */
export async function expireNow(pool: Pool, fileId: string): Promise<void> {
  const id = parseFileId(fileId);
  if (!id) throw new Error(`not a file id: ${fileId}`);
  const { rowCount } = await pool.query(
    `UPDATE files SET expires_at = now() - interval '1 second' WHERE id = $1::uuid AND state = 'ready'`,
    [id.uuid],
  );
  if (rowCount !== 1) throw new Error(`no ready row for ${fileId}`);
}

/** The FilesError `promise` rejects with (shared with the unit tests). */
export { rejectedFilesError as filesErrorOf } from '../unit/support/expect-files-error';

/**
 * Every SchedulerRegistry instance in the application and the interval names each holds. More
 * than one registry means more than one ScheduleModule was instantiated.
 */
export function schedulerRegistries(app: INestApplicationContext): string[][] {
  const registries = new Set<SchedulerRegistry>();
  for (const module of app.get(ModulesContainer).values()) {
    const instance = module.providers.get(SchedulerRegistry)?.instance;
    if (instance instanceof SchedulerRegistry) registries.add(instance);
  }
  return [...registries].map((registry) => registry.getIntervals().sort());
}

/** Connections the server currently has open to `database` (any client, this one excluded). */
export async function connectionsTo(adminUrl: string, database: string): Promise<number> {
  const client = new Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>(
      'SELECT count(*)::text AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [database],
    );
    return Number(rows[0].n);
  } finally {
    await client.end();
  }
}
