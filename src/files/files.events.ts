import { Logger } from '@nestjs/common';
import type { FileObject } from './file.mapper';

/** A file became visible: uploaded through `POST /files` or written with `FilesService.createFile`. */
export interface FileCreatedEvent {
  ownerId: string;
  file: FileObject;
}

/** A file left view because its owner (or host code) deleted it. */
export interface FileDeletedEvent {
  ownerId: string;
  fileId: string;
}

/** A file left view because it reached `expires_at` and was taken off its owner's usage. */
export interface FileExpiredEvent {
  ownerId: string;
  fileId: string;
}

export interface FilesEventMap {
  'file.created': FileCreatedEvent;
  'file.deleted': FileDeletedEvent;
  'file.expired': FileExpiredEvent;
}

export type FilesEventName = keyof FilesEventMap;

type Listener<E extends FilesEventName> = (event: FilesEventMap[E]) => void | Promise<void>;

/**
 * In-process notifications of one FilesModule instance, for a host that reacts to files coming
 * and going (e.g. fails a batch whose input vanished). Each event is emitted once, after the
 * change is committed, by the process that made it: `file.expired` comes from whichever replica
 * ran the sweep (or took the owner's next upload). Listeners run synchronously after the commit;
 * a listener that throws or rejects is logged and never affects the request or the other
 * listeners. Events are not persisted: a process that dies right after a commit loses them, so a
 * host that must not miss one should also reconcile against `FilesService.list`/`retrieve`.
 */
export class FilesEvents {
  private readonly logger = new Logger(FilesEvents.name);
  private readonly listeners = new Map<FilesEventName, Set<Listener<FilesEventName>>>();

  /** Subscribes to `name`; returns a function that unsubscribes. */
  on<E extends FilesEventName>(name: E, listener: Listener<E>): () => void {
    let set = this.listeners.get(name);
    if (set === undefined) this.listeners.set(name, (set = new Set()));
    set.add(listener as Listener<FilesEventName>);
    return () => void set.delete(listener as Listener<FilesEventName>);
  }

  emit<E extends FilesEventName>(name: E, event: FilesEventMap[E]): void {
    for (const listener of this.listeners.get(name) ?? []) {
      try {
        const result = listener(event);
        if (result instanceof Promise) result.catch((error: unknown) => this.failed(name, error));
      } catch (error) {
        this.failed(name, error);
      }
    }
  }

  private failed(name: FilesEventName, error: unknown): void {
    this.logger.error(`a ${name} listener failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}
