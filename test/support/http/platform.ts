import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { newFileId } from '../../../src/files/file-id';
import type { Harness, TestOwner } from './harness';
import { jsonlBytes } from './api';

/**
 * A `batch-output` file as the platform would create it (there is no HTTP route for that): its
 * bytes in fs storage, a `ready` row, and its size charged to the owner in the same transaction,
 * keeping `owner_usage` equal to the sum of the owner's ready rows.
 */
export async function insertPlatformFile(
  h: Harness,
  owner: TestOwner,
  options: { bytes: number; filename?: string; expiresInSeconds?: number },
): Promise<{ id: string; data: Buffer }> {
  if (!h.t.fsDir) throw new Error('fs storage only');
  const now = h.t.clock.now();
  const id = newFileId(now.getTime());
  const data = jsonlBytes(options.bytes, 99);
  await mkdir(path.join(h.t.fsDir, 'files'), { recursive: true });
  await writeFile(path.join(h.t.fsDir, 'files', id.publicId), data);
  const expiresAt = new Date(id.timestampMs + (options.expiresInSeconds ?? 2_592_000) * 1000);
  await h.db.query('BEGIN');
  try {
    await h.db.query(
      `INSERT INTO files (id, owner_id, state, purpose, filename, bytes, sha256, created_at, expires_at, heartbeat_at)
       VALUES ($1::uuid, $2, 'ready', 'batch-output', $3, $4, NULL, $5, $6, $7)`,
      [id.uuid, owner.name, options.filename ?? 'batch_output.jsonl', options.bytes, new Date(id.timestampMs), expiresAt, now],
    );
    await h.db.query(
      `INSERT INTO owner_usage (owner_id, used_bytes, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (owner_id) DO UPDATE SET used_bytes = owner_usage.used_bytes + EXCLUDED.used_bytes`,
      [owner.name, options.bytes, now],
    );
    await h.db.query('COMMIT');
  } catch (error) {
    await h.db.query('ROLLBACK');
    throw error;
  }
  return { id: id.publicId, data };
}
