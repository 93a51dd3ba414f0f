import { readdir, readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { parseFileId } from '../../../src/files/file-id';
import { listKeys, listMultipartUploads } from '../backends';
import type { Harness } from './harness';

/** Everything a request could leave behind: metadata rows, usage totals, stored objects. */
export interface Residue {
  rows: { id: string; owner_id: string; state: string; bytes: string }[];
  usage: { owner_id: string; used_bytes: string }[];
  /** Every file under the storage directory (`.partial` included), or every S3 object key. */
  objects: string[];
  /** Open S3 multipart uploads (always empty for fs storage). */
  multipartUploads: string[];
}

export async function residue(h: Harness): Promise<Residue> {
  const rows = await h.db.query(`SELECT id::text, owner_id, state::text, bytes::text FROM files ORDER BY id`);
  const usage = await h.db.query(`SELECT owner_id, used_bytes::text FROM owner_usage ORDER BY owner_id`);
  let objects: string[] = [];
  let multipartUploads: string[] = [];
  if (h.t.fsDir) objects = await walk(h.t.fsDir);
  if (h.t.bucket) {
    objects = (await listKeys(h.t.bucket.client, h.t.bucket.settings.bucket)).sort();
    multipartUploads = (await listMultipartUploads(h.t.bucket.client, h.t.bucket.settings.bucket)).map((u) => u.key).sort();
  }
  return { rows: rows.rows, usage: usage.rows, objects, multipartUploads };
}

/** Asserts that storage, rows and usage are exactly as in `before`. */
export async function expectNothingLeftBehind(h: Harness, before: Residue): Promise<void> {
  expect(await residue(h)).toEqual(before);
}

/**
 * For cleanup that happens after the response (a client that vanished gets none): polls until
 * the state is back to `before`, then asserts it.
 */
export async function eventuallyNothingLeftBehind(h: Harness, before: Residue, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let now = await residue(h);
  while (Date.now() < deadline && JSON.stringify(now) !== JSON.stringify(before)) {
    await new Promise((r) => setTimeout(r, 50));
    now = await residue(h);
  }
  expect(now).toEqual(before);
}

/** Relative paths of all regular files under `root`. */
export async function walk(root: string, relative = ''): Promise<string[]> {
  const entries = await readdir(path.join(root, relative), { withFileTypes: true }).catch(() => []);
  const out: string[] = [];
  for (const entry of entries) {
    const child = relative === '' ? entry.name : `${relative}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await walk(root, child)));
    else out.push(child);
  }
  return out.sort();
}

/** The stored bytes of a file on fs storage (the service keys objects by id: `files/<id>`). */
export function storedBytes(h: Harness, id: string): Promise<Buffer> {
  if (!h.t.fsDir) throw new Error('fs storage only');
  return readFile(path.join(h.t.fsDir, 'files', id));
}

/** The metadata row of a public id, or undefined. */
export async function rowOf(h: Harness, id: string): Promise<Record<string, string> | undefined> {
  const uuid = parseFileId(id)?.uuid;
  if (!uuid) throw new Error(`not a file id: ${id}`);
  const { rows } = await h.db.query(
    `SELECT owner_id, state::text, purpose, filename, bytes::text FROM files WHERE id = $1::uuid`,
    [uuid],
  );
  return rows[0];
}

/** The owner's charged usage in bytes (0 when the owner has no usage row). */
export async function usageOf(h: Harness, owner: string): Promise<number> {
  const { rows } = await h.db.query(`SELECT used_bytes::text FROM owner_usage WHERE owner_id = $1`, [owner]);
  return rows.length === 0 ? 0 : Number(rows[0].used_bytes);
}
