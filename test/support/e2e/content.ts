import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { finished } from 'node:stream/promises';

export const MiB = 1024 * 1024;

export function sha256(content: Uint8Array): string {
  return createHash('sha256').update(content).digest('hex');
}

export interface TempFile {
  path: string;
  name: string;
  bytes: number;
  sha256: string;
}

/** A directory for files the tests upload from disk; `remove` deletes it with its contents. */
export async function tempDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'files-api-e2e-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Writes `bytes` random bytes to `dir/name` without holding them all in memory, and returns the
 * file's SHA-256 (random content, so a dropped or reordered chunk cannot go unnoticed).
 */
export async function writeRandomFile(dir: string, name: string, bytes: number): Promise<TempFile> {
  const file = path.join(dir, name);
  const out = createWriteStream(file);
  const hash = createHash('sha256');
  for (let written = 0; written < bytes; ) {
    const chunk = randomBytes(Math.min(MiB, bytes - written));
    hash.update(chunk);
    written += chunk.length;
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  out.end();
  await finished(out);
  return { path: file, name, bytes, sha256: hash.digest('hex') };
}
