import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { guardDatabase } from '../database/database-errors';
import type { ApiKey as ApiKeyRow } from '../generated/prisma/client';
import { ApiKeysDatabase } from './api-keys.database';
import type { ActiveApiKey, ApiKeyRecord, RevokeResult } from './api-key.types';

export interface CreateApiKey {
  ownerId: string;
  name: string;
  /** SHA-256 of the key (32 bytes). */
  keyHash: Buffer;
  keyPrefix: string;
  createdAt: Date;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The `api_keys` table, with intent-named methods. Prisma types never leave this class; every
 * query runs under guardDatabase, so an unreachable database surfaces as
 * DatabaseUnavailableError (a 503), never as "no such key" (a 401).
 */
@Injectable()
export class ApiKeysRepository {
  constructor(private readonly db: ApiKeysDatabase) {}

  async create(input: CreateApiKey): Promise<ApiKeyRecord> {
    const row = await guardDatabase(() =>
      this.db.prisma.apiKey.create({
        data: {
          id: randomUUID(),
          ownerId: input.ownerId,
          name: input.name,
          keyHash: bytes(input.keyHash),
          keyPrefix: input.keyPrefix,
          createdAt: input.createdAt,
        },
      }),
    );
    return toRecord(row);
  }

  /** The non-revoked key with this SHA-256 digest, if any (one unique-index lookup). */
  async findActiveByHash(keyHash: Buffer): Promise<ActiveApiKey | null> {
    const row = await guardDatabase(() =>
      this.db.prisma.apiKey.findFirst({
        where: { keyHash: bytes(keyHash), revokedAt: null },
        select: { id: true, ownerId: true, keyHash: true, lastUsedAt: true },
      }),
    );
    if (row === null) return null;
    return { id: row.id, ownerId: row.ownerId, keyHash: Buffer.from(row.keyHash), lastUsedAt: row.lastUsedAt };
  }

  /** Keys oldest first, of one owner or of everyone; revoked ones only with `includeRevoked`. */
  async list(ownerId?: string, includeRevoked = false): Promise<ApiKeyRecord[]> {
    const rows = await guardDatabase(() =>
      this.db.prisma.apiKey.findMany({
        where: { ...(ownerId === undefined ? {} : { ownerId }), ...(includeRevoked ? {} : { revokedAt: null }) },
        orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
      }),
    );
    return rows.map(toRecord);
  }

  async findById(id: string): Promise<ApiKeyRecord | null> {
    if (!UUID.test(id)) return null;
    const row = await guardDatabase(() => this.db.prisma.apiKey.findUnique({ where: { id } }));
    return row === null ? null : toRecord(row);
  }

  /**
   * Revokes the key for good. Revoking a revoked key changes nothing (its first revocation time
   * stays) and says so; an unknown (or malformed) id is `not_found`.
   */
  async revoke(id: string, now: Date): Promise<RevokeResult> {
    if (!UUID.test(id)) return { status: 'not_found' };
    const { count } = await guardDatabase(() =>
      this.db.prisma.apiKey.updateMany({ where: { id, revokedAt: null }, data: { revokedAt: now } }),
    );
    const key = await this.findById(id);
    if (key === null) return { status: 'not_found' };
    return { status: count === 1 ? 'revoked' : 'already_revoked', key };
  }

  /** Records a use; never moves last_used_at backwards and never touches a revoked key. */
  async touchLastUsed(id: string, now: Date): Promise<void> {
    await guardDatabase(() =>
      this.db.prisma.apiKey.updateMany({
        where: { id, revokedAt: null, OR: [{ lastUsedAt: null }, { lastUsedAt: { lt: now } }] },
        data: { lastUsedAt: now },
      }),
    );
  }
}

function toRecord(row: ApiKeyRow): ApiKeyRecord {
  return {
    id: row.id,
    ownerId: row.ownerId,
    name: row.name,
    prefix: row.keyPrefix,
    createdAt: row.createdAt,
    lastUsedAt: row.lastUsedAt,
    revokedAt: row.revokedAt,
  };
}

/** Prisma's Bytes is a Uint8Array over a plain ArrayBuffer; a Buffer may sit on a shared pool. */
function bytes(buffer: Buffer): Uint8Array<ArrayBuffer> {
  return new Uint8Array(buffer);
}
