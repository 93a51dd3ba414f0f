import { Logger } from '@nestjs/common';
import type { Request } from 'express';
import { timingSafeEqual } from 'node:crypto';
import { Clock } from '../common/clock';
import { ApiKeyOwnerResolver, apiKeyDigest, bearerKey, OwnerResolver, type Unauthenticated } from '../files/auth/owner-resolver';
import { isManagedKeyFormat } from './api-key';
import type { ActiveApiKey } from './api-key.types';
import type { ApiKeysRepository } from './api-keys.repository';

/** What the resolver needs of the repository (the port unit tests fake). */
export type ApiKeyLookup = Pick<ApiKeysRepository, 'findActiveByHash' | 'touchLastUsed'>;

export interface ManagedApiKeyResolverOptions {
  /** Static keys (API_KEYS): checked first, in memory, and never cached or touched. */
  envKeys: ReadonlyMap<string, string>;
  /** How long a key found in the database is trusted without asking again; 0 = never cached. */
  cacheSeconds: number;
  /** Most keys cached at once (oldest dropped first). */
  cacheMaxEntries?: number;
  /** last_used_at is written at most this often per key (and per process). */
  lastUsedIntervalMs?: number;
}

interface CachedKey {
  id: string;
  ownerId: string;
  /** Epoch ms after which the database is asked again. */
  until: number;
}

const INVALID: Unauthenticated = { reason: 'invalid' };
const DEFAULT_CACHE_MAX_ENTRIES = 10_000;
const DEFAULT_LAST_USED_INTERVAL_MS = 60_000;

/**
 * `Authorization: Bearer <key>` against the static keys from API_KEYS, then against the managed
 * keys in PostgreSQL. A key found in the database is remembered for `cacheSeconds` (counted from
 * when the database was asked), so a revoked key stops working within that time on every
 * instance; unknown and revoked keys are never remembered, so a new key works at once.
 * Concurrent lookups of one key share a single query. A database failure propagates
 * (DatabaseUnavailableError, answered 503) and is never taken for "unknown key" (401).
 */
export class ManagedApiKeyResolver extends OwnerResolver {
  private readonly logger = new Logger(ManagedApiKeyResolver.name);
  private readonly envKeys: ApiKeyOwnerResolver;
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly lastUsedIntervalMs: number;
  /** By digest (base64), never by key. Insertion order is expiry order: all entries share one TTL. */
  private readonly cache = new Map<string, CachedKey>();
  private readonly inFlight = new Map<string, Promise<ActiveApiKey | null>>();
  /** Key id → epoch ms of the last recorded use (ours, or the one the database had). */
  private readonly lastUsed = new Map<string, number>();

  constructor(
    private readonly keys: ApiKeyLookup,
    private readonly clock: Clock,
    options: ManagedApiKeyResolverOptions,
  ) {
    super();
    this.envKeys = new ApiKeyOwnerResolver(options.envKeys);
    this.ttlMs = options.cacheSeconds * 1000;
    this.maxEntries = options.cacheMaxEntries ?? DEFAULT_CACHE_MAX_ENTRIES;
    this.lastUsedIntervalMs = options.lastUsedIntervalMs ?? DEFAULT_LAST_USED_INTERVAL_MS;
  }

  async resolve(request: Request): Promise<string | Unauthenticated> {
    const key = bearerKey(request);
    if (typeof key !== 'string') return key;
    const digest = apiKeyDigest(key);
    const envOwner = this.envKeys.ownerOfDigest(digest);
    if (envOwner !== undefined) return envOwner;
    // Nothing else can match a stored digest: spare the database.
    if (!isManagedKeyFormat(key)) return INVALID;
    const found = await this.lookup(digest);
    if (found === null) return INVALID;
    this.recordUse(found.id);
    return found.ownerId;
  }

  private async lookup(digest: Buffer): Promise<{ id: string; ownerId: string } | null> {
    const cacheKey = digest.toString('base64');
    const cached = this.cache.get(cacheKey);
    if (cached !== undefined) {
      if (cached.until > this.clock.now().getTime()) return cached;
      this.cache.delete(cacheKey);
    }
    let pending = this.inFlight.get(cacheKey);
    if (pending === undefined) {
      pending = this.fetch(cacheKey, digest).finally(() => this.inFlight.delete(cacheKey));
      this.inFlight.set(cacheKey, pending);
    }
    return pending;
  }

  private async fetch(cacheKey: string, digest: Buffer): Promise<ActiveApiKey | null> {
    // The TTL counts from before the query: a revocation committed after it began is seen within ttl.
    const asked = this.clock.now().getTime();
    const row = await this.keys.findActiveByHash(digest);
    if (row === null || row.keyHash.length !== digest.length || !timingSafeEqual(row.keyHash, digest)) return null;
    if (row.lastUsedAt !== null) this.noteLastUsed(row.id, row.lastUsedAt.getTime());
    if (this.ttlMs > 0) {
      this.cache.delete(cacheKey);
      bound(this.cache, this.maxEntries);
      this.cache.set(cacheKey, { id: row.id, ownerId: row.ownerId, until: asked + this.ttlMs });
    }
    return row;
  }

  /** Writes last_used_at at most once per interval per key; fire-and-forget, failures only logged. */
  private recordUse(id: string): void {
    const now = this.clock.now();
    const last = this.lastUsed.get(id);
    if (last !== undefined && now.getTime() - last < this.lastUsedIntervalMs) return;
    this.lastUsed.delete(id);
    bound(this.lastUsed, this.maxEntries);
    this.lastUsed.set(id, now.getTime());
    const failed = (error: unknown) =>
      this.logger.warn(`could not record the use of API key ${id}: ${error instanceof Error ? error.message : String(error)}`);
    try {
      this.keys.touchLastUsed(id, now).catch(failed);
    } catch (error) {
      failed(error);
    }
  }

  private noteLastUsed(id: string, at: number): void {
    const known = this.lastUsed.get(id);
    if (known !== undefined && known >= at) return;
    this.lastUsed.delete(id);
    bound(this.lastUsed, this.maxEntries);
    this.lastUsed.set(id, at);
  }
}

/** Drops the oldest entries so one more fits within `max`. */
function bound<V>(map: Map<string, V>, max: number): void {
  for (const oldest of map.keys()) {
    if (map.size < max) return;
    map.delete(oldest);
  }
}
