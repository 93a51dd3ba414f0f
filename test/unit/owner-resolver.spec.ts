import type { Request } from 'express';
import { ConfigError, parseApiKeys } from '../../src/config/app-config';
import { ApiKeyOwnerResolver } from '../../src/files/auth/owner-resolver';

const KEYS = new Map([
  ['sk-alice-0000000001', 'alice'],
  ['sk-bob-00000000002', 'bob'],
  ['key:with:colons', 'carol'],
]);
const requestWith = (authorization?: unknown) =>
  ({ headers: authorization === undefined ? {} : { authorization } }) as unknown as Request;

describe(ApiKeyOwnerResolver.name, () => {
  const resolver = new ApiKeyOwnerResolver(KEYS);
  const resolve = (authorization?: unknown) => resolver.resolve(requestWith(authorization));

  it('resolves a known key to its owner', () => {
    expect(resolve('Bearer sk-alice-0000000001')).toBe('alice');
    expect(resolve('Bearer sk-bob-00000000002')).toBe('bob');
    expect(resolve('Bearer key:with:colons')).toBe('carol');
  });

  it.each(['bearer', 'BEARER', 'BeArEr'])('accepts the scheme spelled %p', (scheme) => {
    expect(resolve(`${scheme} sk-alice-0000000001`)).toBe('alice');
  });

  it('tolerates several spaces or tabs around the key', () => {
    expect(resolve('Bearer   sk-alice-0000000001')).toBe('alice');
    expect(resolve('Bearer\tsk-alice-0000000001 \t')).toBe('alice');
  });

  it.each([
    ['no header', undefined],
    ['an empty header', ''],
    ['a blank header', '   '],
  ])('reports %s as missing', (_case, header) => {
    expect(resolve(header)).toEqual({ reason: 'missing' });
  });

  it.each([
    ['a scheme without a key', 'Bearer'],
    ['a scheme and a space', 'Bearer '],
    ['a key without a scheme', 'sk-alice-0000000001'],
    ['the Basic scheme', 'Basic c2stYWxpY2U6'],
    ['a token with an inner space', 'Bearer sk-alice 0000000001'],
    ['a scheme glued to the key', 'Bearersk-alice-0000000001'],
    ['a 1025-character key', `Bearer ${'k'.repeat(1025)}`],
    ['two headers joined', 'Bearer sk-alice-0000000001, Bearer sk-bob-00000000002'],
  ])('reports %s as invalid', (_case, header) => {
    expect(resolve(header)).toEqual({ reason: 'invalid' });
  });

  it.each([
    ['an unknown key', 'Bearer sk-mallory-000000001'],
    ['a prefix of a known key', 'Bearer sk-alice-000000000'],
    ['a known key with a suffix', 'Bearer sk-alice-00000000012'],
    ['a known key in another case', 'Bearer SK-ALICE-0000000001'],
    ['an owner name instead of a key', 'Bearer alice'],
  ])('reports %s as invalid', (_case, header) => {
    expect(resolve(header)).toEqual({ reason: 'invalid' });
  });

  it('resolves nothing when no keys are configured', () => {
    expect(new ApiKeyOwnerResolver(new Map()).resolve(requestWith('Bearer sk-alice-0000000001'))).toEqual({ reason: 'invalid' });
  });

  it('does not keep the keys themselves', () => {
    const serialized = JSON.stringify(resolver);
    expect(serialized).not.toContain('sk-alice-0000000001');
    expect(serialized).toContain('alice');
  });

  describe('with keys from API_KEYS', () => {
    /** The header as Node hands it over: the client's UTF-8 bytes read as latin1. */
    const overHttp = (key: string) => requestWith(Buffer.from(`Bearer ${key}`, 'utf8').toString('latin1'));

    it.each([
      ['an inner space', 'sk-live aaaaaaaa'],
      ['a space before the colon', 'sk-live-aaaaaaaa '],
      ['a tab', 'sk-live-\taaaaaaa'],
      ['1025 characters', 'k'.repeat(1025)],
      ['non-ASCII characters', 'sk-ключ-aaaaaaaa'],
    ])('refuses at startup a key with %s rather than one no request can ever present', (_case, key) => {
      let keys: Map<string, string>;
      try {
        keys = parseApiKeys(`${key}:alice`);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).message).not.toContain(key.trim());
        return;
      }
      // Accepted: then it must work.
      expect(new ApiKeyOwnerResolver(keys).resolve(overHttp(key))).toBe('alice');
    });

    it('resolves a key of exactly 1024 printable ASCII characters', () => {
      const key = `sk-${'~'.repeat(1021)}`;
      expect(new ApiKeyOwnerResolver(parseApiKeys(`${key}:alice`)).resolve(overHttp(key))).toBe('alice');
    });
  });
});
