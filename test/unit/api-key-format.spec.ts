import { createHash } from 'node:crypto';
import { generateApiKey, isManagedKeyFormat, MANAGED_KEY_PREFIX } from '../../src/api-keys/api-key';
import { bearerKey } from '../../src/files/auth/owner-resolver';
import type { Request } from 'express';

describe(generateApiKey.name, () => {
  it('makes sk-files- followed by base64url of 32 random bytes', () => {
    const { key } = generateApiKey();
    expect(key).toMatch(/^sk-files-[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(key.slice(MANAGED_KEY_PREFIX.length), 'base64url')).toHaveLength(32);
  });

  it('gives the SHA-256 digest of the whole key string, and a short prefix of it', () => {
    const { key, hash, prefix } = generateApiKey();
    expect(hash.equals(createHash('sha256').update(key).digest())).toBe(true);
    expect(key.startsWith(prefix)).toBe(true);
    expect(prefix).toMatch(/^sk-files-.{6}$/);
  });

  it('never repeats itself', () => {
    const keys = new Set(Array.from({ length: 1000 }, () => generateApiKey().key));
    expect(keys.size).toBe(1000);
  });

  it('makes keys any Authorization header carries as they are', () => {
    const { key } = generateApiKey();
    expect(bearerKey({ headers: { authorization: `Bearer ${key}` } } as unknown as Request)).toBe(key);
  });
});

describe(isManagedKeyFormat.name, () => {
  it('accepts what generateApiKey makes', () => {
    for (let i = 0; i < 100; i++) expect(isManagedKeyFormat(generateApiKey().key)).toBe(true);
  });

  it.each([
    ['another prefix', `sk-file-${'a'.repeat(43)}`],
    ['a short body', `sk-files-${'a'.repeat(42)}`],
    ['a long body', `sk-files-${'a'.repeat(44)}`],
    ['padding', `sk-files-${'a'.repeat(42)}=`],
    ['standard base64 characters', `sk-files-${'a'.repeat(42)}/`],
    ['an upper-case prefix', `SK-FILES-${'a'.repeat(43)}`],
  ])('refuses %s', (_case, key) => {
    expect(isManagedKeyFormat(key)).toBe(false);
  });
});
