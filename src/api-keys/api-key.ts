import { randomBytes } from 'node:crypto';
import { apiKeyDigest } from '../files/auth/owner-resolver';

/** Every managed key starts with this, so a leaked one is recognisable (e.g. by secret scanners). */
export const MANAGED_KEY_PREFIX = 'sk-files-';

/** `sk-files-` + base64url of 32 random bytes (43 characters, no padding). */
const MANAGED_KEY_PATTERN = /^sk-files-[A-Za-z0-9_-]{43}$/;

/** Characters of the key kept in clear for display: the fixed prefix plus 6 of its 43 random ones. */
const DISPLAY_PREFIX_LENGTH = MANAGED_KEY_PREFIX.length + 6;

export interface NewApiKey {
  /** The key itself: shown once, never stored. */
  key: string;
  /** SHA-256 of `key`: what is stored and looked up. */
  hash: Buffer;
  /** The start of the key, not secret, for telling keys apart in listings. */
  prefix: string;
}

/** A new random managed key (256 bits of entropy), with its digest and display prefix. */
export function generateApiKey(): NewApiKey {
  const key = MANAGED_KEY_PREFIX + randomBytes(32).toString('base64url');
  return { key, hash: apiKeyDigest(key), prefix: key.slice(0, DISPLAY_PREFIX_LENGTH) };
}

/**
 * Whether `key` has the shape of a managed key. Any other string can never match a stored
 * digest, so it needs no database lookup.
 */
export function isManagedKeyFormat(key: string): boolean {
  return MANAGED_KEY_PATTERN.test(key);
}
