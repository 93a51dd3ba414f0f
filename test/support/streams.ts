import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';

export const MiB = 1024 * 1024;

/** Random content of `bytes` bytes (random, so a misplaced chunk cannot go unnoticed). */
export function randomContent(bytes: number): Buffer {
  return randomBytes(bytes);
}

export function sha256(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

/** `content` as a stream of unknown length, in chunks the way a network socket delivers them. */
export function streamOf(content: Buffer, chunkBytes = 256 * 1024): Readable {
  return Readable.from(chunks(content, chunkBytes), { objectMode: false });
}

/** Delivers `prefix`, then fails with `error` (a client that disconnects, a limit that trips). */
export function failingStream(prefix: Buffer, error: Error): Readable {
  return Readable.from(
    (async function* () {
      yield* chunks(prefix, 256 * 1024);
      await new Promise((resolve) => setImmediate(resolve));
      throw error;
    })(),
    { objectMode: false },
  );
}

/**
 * A body the test feeds by hand. `feed` resolves once the consumer has taken the bytes, so the
 * test knows the write is under way.
 */
export function manualStream(): { stream: PassThrough; feed(content: Buffer): Promise<void> } {
  const stream = new PassThrough({ highWaterMark: 64 * 1024 });
  return {
    stream,
    feed: async (content) => {
      for (const chunk of chunks(content, 64 * 1024)) {
        if (!stream.write(chunk)) await new Promise((resolve) => stream.once('drain', resolve));
      }
    },
  };
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** Polls `check` until it holds or `timeoutMs` passes. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function* chunks(content: Buffer, size: number): Generator<Buffer> {
  for (let at = 0; at < content.length; at += size) yield content.subarray(at, at + size);
}
