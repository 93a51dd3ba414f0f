import { Injectable } from '@nestjs/common';
import { FilesRepository } from './files.repository';
import { FileStorage } from './storage/file-storage';

export type Check = { status: 'ok' } | { status: 'error'; error: string };

/** Readiness of the Files API's backends, for the host's health endpoint. */
@Injectable()
export class FilesHealth {
  constructor(
    private readonly repository: FilesRepository,
    private readonly storage: FileStorage,
  ) {}

  async check(timeoutMs = 3000): Promise<{ database: Check; storage: Check }> {
    const [database, storage] = await Promise.all([
      probe(() => this.repository.ping(), timeoutMs),
      probe(() => this.storage.ping(), timeoutMs),
    ]);
    return { database, storage };
  }
}

async function probe(operation: () => Promise<void>, timeoutMs: number): Promise<Check> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      operation(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { status: 'ok' };
  } catch (error) {
    return { status: 'error', error: (error as Error).message };
  } finally {
    clearTimeout(timer);
  }
}
