/** A managed API key as people see it: never the key, never its hash. */
export interface ApiKeyRecord {
  id: string;
  ownerId: string;
  name: string;
  /** The first characters of the key, for telling keys apart. */
  prefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

/** What authentication needs of a non-revoked key. */
export interface ActiveApiKey {
  id: string;
  ownerId: string;
  /** The stored SHA-256 digest, compared in constant time with the presented key's. */
  keyHash: Buffer;
  lastUsedAt: Date | null;
}

/** The outcome of revoking by id: revoking twice is not an error, an unknown id is. */
export type RevokeResult =
  | { status: 'revoked'; key: ApiKeyRecord }
  | { status: 'already_revoked'; key: ApiKeyRecord }
  | { status: 'not_found' };
