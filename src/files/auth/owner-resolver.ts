import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';

/** Why a request carries no owner: no credentials at all, or credentials nobody knows. */
export type Unauthenticated = { reason: 'missing' | 'invalid' };

/**
 * Port: maps a request to the owner it acts for. The default reads `Authorization: Bearer <key>`
 * against configured API keys; a host application embedding FilesModule supplies its own (its
 * sessions, its tenants).
 */
export abstract class OwnerResolver {
  abstract resolve(request: Request): Promise<string | Unauthenticated> | string | Unauthenticated;
}

/**
 * Static API keys. Keys are kept only as SHA-256 digests and every lookup compares the presented
 * key's digest with all of them in constant time, so response timing says nothing about how much
 * of a key was right.
 */
export class ApiKeyOwnerResolver extends OwnerResolver {
  private readonly entries: { digest: Buffer; owner: string }[];

  constructor(keys: ReadonlyMap<string, string>) {
    super();
    this.entries = [...keys].map(([key, owner]) => ({ digest: sha256(key), owner }));
  }

  resolve(request: Request): string | Unauthenticated {
    const header = request.headers.authorization;
    if (typeof header !== 'string' || header.trim() === '') return { reason: 'missing' };
    const match = /^Bearer[ \t]+(\S{1,1024})[ \t]*$/i.exec(header);
    if (!match) return { reason: 'invalid' };
    const presented = sha256(match[1]);
    let owner: string | undefined;
    for (const entry of this.entries) {
      // No early exit: every entry is compared whatever matched.
      if (timingSafeEqual(entry.digest, presented)) owner ??= entry.owner;
    }
    return owner ?? { reason: 'invalid' };
  }
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}
