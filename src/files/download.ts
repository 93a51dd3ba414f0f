import type { Response } from 'express';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { noteStreamedBytes } from '../common/streamed-bytes-gc';
import type { StoredFile } from './file.types';
import { contentDisposition } from './filename';
import type { ByteRange } from './storage/file-storage';

export interface FileContent {
  file: StoredFile;
  body: Readable;
  /** Present for a 206 partial response. */
  range?: ByteRange;
}

/**
 * Reads a `Range` header against a file of `size` bytes. Only a single `bytes=` range is
 * honoured; anything else (several ranges, other units, garbage) means "send the whole file",
 * as RFC 9110 allows. Returns 'unsatisfiable' for a range wholly past the end.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined | 'unsatisfiable' {
  if (header === undefined) return undefined;
  const match = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size) return 'unsatisfiable';
  if (end < start) return undefined;
  return { start, end };
}

/**
 * Streams file content with `pipeline`, so a client that goes away releases the storage stream
 * at once, and a storage failure mid-body cuts the connection (the client sees a short read,
 * never a silently truncated file with a success status).
 */
export async function sendContent(response: Response, content: FileContent): Promise<void> {
  const { file, range } = content;
  response.status(range ? 206 : 200);
  response.setHeader('Content-Type', 'application/octet-stream');
  response.setHeader('Content-Length', String(range ? range.end - range.start + 1 : file.bytes));
  response.setHeader('Content-Disposition', contentDisposition(file.filename));
  response.setHeader('Accept-Ranges', 'bytes');
  response.setHeader('Cache-Control', 'private, no-store');
  response.setHeader('X-Content-Type-Options', 'nosniff');
  if (file.sha256) response.setHeader('ETag', `"${file.sha256}"`);
  if (range) response.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${file.bytes}`);
  try {
    const sending = pipeline(content.body, response);
    // Each chunk is garbage once written; see noteStreamedBytes for why that needs pacing.
    content.body.on('data', (chunk: Buffer) => noteStreamedBytes(chunk.length));
    await sending;
  } catch {
    // Headers are out; the only honest signal left is a broken connection.
    content.body.destroy();
    response.destroy();
  }
}
