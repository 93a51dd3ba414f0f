import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Bytes streamed between two young-generation collections. At 100 MiB/s that is about twelve
 * collections a second, each well under a millisecond (the young generation stays small).
 */
export const STREAMED_BYTES_PER_GC = 8 * 1024 * 1024;

let minorGc: (() => void) | null | undefined;
let sinceLastGc = 0;

/**
 * Paces garbage collection by the bytes a stream moved. Bodies pass through Node as 64 KiB
 * buffers held outside V8's heap (socket reads; every HTTP body chunk is a fresh copy). They are
 * garbage a moment later, but V8 schedules collections by what is allocated on its own heap, which
 * streaming barely touches: it collects them only under "external memory pressure", tens of MiB
 * later, often with a full mark-compact. Measured (docs/benchmarks.md): that lag was most of an
 * upload's memory, made it grow with the file, and doubled a download's CPU time (page faults on
 * fresh memory, major GCs). A young-generation collection every STREAMED_BYTES_PER_GC bytes frees
 * the buffers while their memory is still warm for reuse.
 *
 * `gc` comes from a fresh V8 context, so the application's own global scope does not change;
 * where it cannot be had, pacing is skipped and everything works as before.
 */
export function noteStreamedBytes(bytes: number): void {
  sinceLastGc += bytes;
  if (sinceLastGc < STREAMED_BYTES_PER_GC) return;
  sinceLastGc = 0;
  if (minorGc === undefined) minorGc = loadMinorGc();
  minorGc?.();
}

function loadMinorGc(): (() => void) | null {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as ((options: { type: 'minor' }) => void) | undefined;
    return typeof gc === 'function' ? () => gc({ type: 'minor' }) : null;
  } catch {
    return null;
  }
}
