import { Client } from 'pg';
import { listKeys, listMultipartUploads } from '../backends';
import type { TestApp } from '../app';

/** What the service has left in storage and in its tables. */
export interface Residue {
  /** Object keys in the bucket. */
  keys: string[];
  /** Keys of multipart uploads still open in the bucket. */
  openUploads: string[];
  /** Rows of `files`, whatever their state. */
  rows: { id: string; owner_id: string; state: string }[];
  /** `owner_usage.used_bytes` per owner. */
  usage: Record<string, number>;
}

/** Reads the bucket and the `files`/`owner_usage` tables of an S3-backed test app. */
export async function residueOf(t: TestApp): Promise<Residue> {
  if (!t.bucket) throw new Error('residueOf needs an S3-backed test app');
  const { client, settings } = t.bucket;
  const [keys, uploads, tables] = await Promise.all([
    listKeys(client, settings.bucket),
    listMultipartUploads(client, settings.bucket),
    withDatabase(t, async (db) => ({
      rows: (await db.query('SELECT id::text, owner_id, state::text FROM files ORDER BY id')).rows,
      usage: Object.fromEntries(
        (await db.query<{ owner_id: string; used_bytes: string }>('SELECT owner_id, used_bytes FROM owner_usage')).rows.map(
          (r) => [r.owner_id, Number(r.used_bytes)],
        ),
      ),
    })),
  ]);
  return { keys: keys.sort(), openUploads: uploads.map((u) => u.key).sort(), ...tables };
}

export async function withDatabase<T>(t: TestApp, work: (db: Client) => Promise<T>): Promise<T> {
  const db = new Client({ connectionString: t.database.url });
  await db.connect();
  try {
    return await work(db);
  } finally {
    await db.end();
  }
}

/** Polls `read` until `accept` holds, returning the last value read; throws with it after `timeoutMs`. */
export async function eventually<T>(read: () => Promise<T>, accept: (value: T) => boolean, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (accept(value)) return value;
    if (Date.now() > deadline) {
      throw new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(value)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Runs `refused`, which must reject, and returns its error after checking it left nothing behind. */
export async function expectNoResidue<E>(t: TestApp, refused: () => Promise<unknown>): Promise<E> {
  const before = await residueOf(t);
  const error = await refused().then(
    (value) => {
      throw new Error(`expected a refusal, got ${JSON.stringify(value)}`);
    },
    (e: unknown) => e,
  );
  // Checked at once: the refusal is only sent once the service has cleaned up after itself.
  expect(await residueOf(t)).toEqual(before);
  return error as E;
}
