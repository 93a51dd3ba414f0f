/** Where a file's bytes live. The key depends only on the file's public id. */
export const FILE_KEY_PREFIX = 'files/';

export function storageKeyFor(publicId: string): string {
  return FILE_KEY_PREFIX + publicId;
}

/** The public id a storage key belongs to, or null for a key this service did not write. */
export function publicIdFromKey(key: string): string | null {
  return key.startsWith(FILE_KEY_PREFIX) ? key.slice(FILE_KEY_PREFIX.length) : null;
}

const SAFE_KEY = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/;

/** Adapters refuse any key that is not a plain relative path of safe segments. */
export function assertSafeKey(key: string): void {
  if (!SAFE_KEY.test(key)) throw new Error(`unsafe storage key: ${JSON.stringify(key)}`);
}
