import { randomBytes } from 'node:crypto';
import { FilesDatabase } from '../../src/database/files-database';
import { newFileId, type FileId } from '../../src/files/file-id';
import type { StoredFile } from '../../src/files/file.types';
import { FilesRepository } from '../../src/files/files.repository';
import { createTestDatabase, type TestDatabase } from './backends';

export const HOUR_MS = 3_600_000;
/** No quota worth mentioning, for tests that are not about quota. */
export const NO_QUOTA = Number.MAX_SAFE_INTEGER;

export interface RepositoryFixture {
  database: TestDatabase;
  db: FilesDatabase;
  repository: FilesRepository;
  close(): Promise<void>;
}

/** A fresh migrated database with the real FilesDatabase and FilesRepository over it. */
export async function openRepository(options: { poolMax?: number } = {}): Promise<RepositoryFixture> {
  const database = await createTestDatabase();
  const db = openFilesDatabase(database, options.poolMax);
  return {
    database,
    db,
    repository: new FilesRepository(db),
    close: async () => {
      await db.close();
      await database.drop();
    },
  };
}

/** Another connection pool on the same database (what a second replica would have). */
export function openFilesDatabase(database: TestDatabase, poolMax = 10): FilesDatabase {
  return new FilesDatabase({ url: database.url, poolMax, connectTimeoutMs: 5_000, statementTimeoutMs: 15_000 });
}

/** An owner id no other test uses. */
export function newOwner(label = 'owner'): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

export interface SeedOptions {
  bytes?: number;
  /** The id's timestamp (= created_at); defaults to now. */
  createdAtMs?: number;
  /** Lifetime from created_at. */
  lifetimeMs?: number;
  /** The time of the commit; defaults to created_at. */
  nowMs?: number;
  purpose?: string;
  quotaBytes?: number;
}

export type SeededFile = StoredFile & { uuid: string };

/** A pending row, as the upload path creates it before the first byte. */
export async function seedPending(repository: FilesRepository, ownerId: string, createdAtMs = Date.now()): Promise<FileId> {
  const id = newFileId(createdAtMs);
  const createdAt = new Date(id.timestampMs);
  await repository.createPending({ uuid: id.uuid, ownerId, filename: `${id.publicId}.jsonl`, createdAt, now: createdAt });
  return id;
}

/** Commits a pending row with the values the upload path would pass. */
export async function commitPending(repository: FilesRepository, ownerId: string, id: FileId, options: SeedOptions = {}): Promise<StoredFile> {
  const bytes = options.bytes ?? 100;
  const { file } = await repository.commitUpload({
    uuid: id.uuid,
    ownerId,
    purpose: options.purpose ?? 'batch',
    filename: `${id.publicId}.jsonl`,
    bytes,
    sha256: 'ab'.repeat(32),
    expiresAt: new Date(id.timestampMs + (options.lifetimeMs ?? HOUR_MS)),
    now: new Date(options.nowMs ?? id.timestampMs),
    quotaBytes: options.quotaBytes ?? NO_QUOTA,
  });
  return file;
}

/** A committed (`ready`) file. */
export async function seedFile(repository: FilesRepository, ownerId: string, options: SeedOptions = {}): Promise<SeededFile> {
  const id = await seedPending(repository, ownerId, options.createdAtMs);
  return { ...(await commitPending(repository, ownerId, id, options)), uuid: id.uuid };
}

/** What the owner is charged, next to what its `ready` rows add up to (the invariant: equal). */
export async function ledger(db: FilesDatabase, ownerId: string): Promise<{ used: number; readySum: number }> {
  const { rows } = await db.pool.query<{ used: string | null; ready_sum: string }>(
    `SELECT (SELECT used_bytes FROM owner_usage WHERE owner_id = $1) AS used,
            (SELECT COALESCE(SUM(bytes), 0) FROM files WHERE owner_id = $1 AND state = 'ready') AS ready_sum`,
    [ownerId],
  );
  return { used: Number(rows[0].used ?? 0), readySum: Number(rows[0].ready_sum) };
}

/** The row's state, or null when the row is gone. */
export async function stateOf(db: FilesDatabase, uuid: string): Promise<string | null> {
  const { rows } = await db.pool.query<{ state: string }>(`SELECT state::text FROM files WHERE id = $1`, [uuid]);
  return rows[0]?.state ?? null;
}
