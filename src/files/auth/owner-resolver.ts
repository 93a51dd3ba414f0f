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
 * The key of `Authorization: Bearer <key>` (scheme in any case, spaces or tabs around the key,
 * at most 1024 characters without whitespace), or why there is none. Every key-based resolver
 * parses the header here, so they all accept and refuse exactly the same headers.
 */
export function bearerKey(request: Request): string | Unauthenticated {
  const header = request.headers.authorization;
  if (typeof header !== 'string' || header.trim() === '') return { reason: 'missing' };
  const match = /^Bearer[ \t]+(\S{1,1024})[ \t]*$/i.exec(header);
  return match ? match[1] : { reason: 'invalid' };
}

/** SHA-256 of an API key: the only form in which keys are kept, in memory or in a database. */
export function apiKeyDigest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
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
    this.entries = [...keys].map(([key, owner]) => ({ digest: apiKeyDigest(key), owner }));
  }

  resolve(request: Request): string | Unauthenticated {
    const key = bearerKey(request);
    if (typeof key !== 'string') return key;
    return this.ownerOfDigest(apiKeyDigest(key)) ?? { reason: 'invalid' };
  }

  /** The owner of the key whose SHA-256 digest this is, if it is one of the configured keys. */
  ownerOfDigest(presented: Buffer): string | undefined {
    let owner: string | undefined;
    for (const entry of this.entries) {
      // No early exit: every entry is compared whatever matched.
      if (timingSafeEqual(entry.digest, presented)) owner ??= entry.owner;
    }
    return owner;
  }
}
