import { Injectable } from '@nestjs/common';
import type { Batch } from './batch.types';

const TERMINAL: ReadonlySet<Batch['status']> = new Set(['completed', 'failed']);

/** The platform's batches, in memory (a real platform keeps them in its database). */
@Injectable()
export class BatchStore {
  private readonly batches = new Map<string, { ownerId: string; batch: Batch }>();

  add(ownerId: string, batch: Batch): Batch {
    this.batches.set(batch.id, { ownerId, batch });
    return structuredClone(batch);
  }

  /** The owner's batch; another owner's is as absent as an unknown one. */
  find(ownerId: string, id: string): Batch | undefined {
    const entry = this.batches.get(id);
    return entry?.ownerId === ownerId ? structuredClone(entry.batch) : undefined;
  }

  /** Applies `patch` unless the batch already completed or failed; returns whether it did. */
  update(id: string, patch: Partial<Batch>): boolean {
    const entry = this.batches.get(id);
    if (entry === undefined || TERMINAL.has(entry.batch.status)) return false;
    Object.assign(entry.batch, patch);
    return true;
  }

  /** The owner's batches that are still reading `fileId` as their input. */
  readingInput(ownerId: string, fileId: string): Batch[] {
    return [...this.batches.values()]
      .filter(({ ownerId: owner, batch }) => owner === ownerId && batch.input_file_id === fileId)
      .filter(({ batch }) => batch.status === 'validating' || batch.status === 'in_progress')
      .map(({ batch }) => structuredClone(batch));
  }
}
