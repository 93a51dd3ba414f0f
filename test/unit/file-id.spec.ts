import { FILE_ID_PREFIX, fileIdFromUuid, newFileId, parseFileId } from '../../src/files/file-id';

const CROCKFORD = '0123456789abcdefghjkmnpqrstvwxyz';
const WELL_FORMED = /^file_[0-7][0-9abcdefghjkmnpqrstvwxyz]{25}$/;
/** A fixed, well-formed id to mutate in the rejection cases. */
const VALID = 'file_01jd5x7k9m3n4p5q6r7s8t9v0w';

describe('file-id', () => {
  describe(newFileId.name, () => {
    it('mints a url-safe, fixed-length id with the file_ prefix', () => {
      const id = newFileId(Date.UTC(2026, 10, 26));
      expect(id.publicId.startsWith(FILE_ID_PREFIX)).toBe(true);
      expect(id.publicId).toMatch(WELL_FORMED);
      expect(encodeURIComponent(id.publicId)).toBe(id.publicId);
      expect(id.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    });

    it('round-trips publicId, uuid and timestamp', () => {
      for (const ms of [0, 1, 1_764_115_200_123, 2 ** 48 - 1]) {
        const id = newFileId(ms);
        expect(id.timestampMs).toBe(ms);
        expect(parseFileId(id.publicId)).toEqual(id);
        expect(fileIdFromUuid(id.uuid)).toEqual(id);
        expect(fileIdFromUuid(id.uuid.toUpperCase())).toEqual(id);
      }
    });

    it('stores the timestamp in the first 48 bits of the uuid', () => {
      const ms = 0x0123_4567_89ab;
      expect(newFileId(ms).uuid.replace(/-/g, '').slice(0, 12)).toBe('0123456789ab');
    });

    it('sorts ids minted at increasing milliseconds the same as their uuids and as strings', () => {
      const start = Date.UTC(2026, 0, 1);
      // Steps that cross base32 digit boundaries (31→32 ms, 1023→1024 ms…) as well as small ones.
      const times = [0, 1, 31, 32, 1023, 1024, 32_767, 32_768, 86_400_000].map((d) => start + d);
      const ids = times.map((ms) => newFileId(ms));
      const byPublic = [...ids].sort((a, b) => compare(a.publicId, b.publicId));
      const byUuid = [...ids].sort((a, b) => compare(a.uuid, b.uuid));
      expect(byPublic.map((i) => i.timestampMs)).toEqual(times);
      expect(byUuid.map((i) => i.timestampMs)).toEqual(times);
    });

    it('orders public ids exactly as their uuids, whatever the random bits', () => {
      const ids = Array.from({ length: 500 }, (_, i) => newFileId(1_700_000_000_000 + (i % 3)));
      const byPublic = [...ids].sort((a, b) => compare(a.publicId, b.publicId)).map((i) => i.uuid);
      const byUuid = [...ids].sort((a, b) => compare(a.uuid, b.uuid)).map((i) => i.uuid);
      expect(byPublic).toEqual(byUuid);
    });

    it('mints distinct, unpredictable ids within the same millisecond', () => {
      const ms = 1_764_115_200_000;
      const ids = Array.from({ length: 10_000 }, () => newFileId(ms));
      expect(new Set(ids.map((i) => i.publicId)).size).toBe(ids.length);
      expect(new Set(ids.map((i) => i.uuid)).size).toBe(ids.length);
      // The 16 characters after the timestamp are random: each position uses many symbols.
      const lastChars = new Set(ids.map((i) => i.publicId.at(-1)));
      expect(lastChars.size).toBe(CROCKFORD.length);
      const shared = ids[0].publicId.slice(0, FILE_ID_PREFIX.length + 10);
      expect(ids.every((i) => i.publicId.startsWith(shared))).toBe(true);
    });

    it.each([-1, 1.5, Number.NaN, 2 ** 48, Number.POSITIVE_INFINITY])('refuses the timestamp %p', (ms) => {
      expect(() => newFileId(ms)).toThrow(RangeError);
    });
  });

  describe(parseFileId.name, () => {
    it('accepts the id the rejection cases are derived from', () => {
      expect(parseFileId(VALID)?.publicId).toBe(VALID);
    });

    it('accepts the smallest and the largest well-formed id', () => {
      expect(parseFileId(`file_${'0'.repeat(26)}`)?.uuid).toBe('00000000-0000-0000-0000-000000000000');
      expect(parseFileId(`file_7${'z'.repeat(25)}`)?.uuid).toBe('ffffffff-ffff-ffff-ffff-ffffffffffff');
    });

    it.each([
      ['an empty string', ''],
      ['the prefix alone', 'file_'],
      ['a wrong prefix', VALID.replace('file_', 'fil3_')],
      ['an uppercase prefix', VALID.replace('file_', 'FILE_')],
      ['no prefix', VALID.slice(5)],
      ['a dash instead of underscore', VALID.replace('file_', 'file-')],
      ['one character short', VALID.slice(0, -1)],
      ['one character long', `${VALID}0`],
      ['the letter i', `${VALID.slice(0, -1)}i`],
      ['the letter l', `${VALID.slice(0, -1)}l`],
      ['the letter o', `${VALID.slice(0, -1)}o`],
      ['the letter u', `${VALID.slice(0, -1)}u`],
      ['uppercase characters', VALID.toUpperCase().replace('FILE_', 'file_')],
      ['a first character of 8 (overflows 128 bits)', `file_8${'0'.repeat(25)}`],
      ['a first character of z (overflows 128 bits)', `file_z${'z'.repeat(25)}`],
      ['a leading space', ` ${VALID}`],
      ['a trailing space', `${VALID} `],
      ['a trailing newline', `${VALID}\n`],
      ['an inner space', `${VALID.slice(0, 10)} ${VALID.slice(11)}`],
      ['a path separator', `${VALID.slice(0, -1)}/`],
      ['a uuid', '0193a4c2-7f1e-7c3b-9d2a-1b2c3d4e5f60'],
      ['a full-width digit', `${VALID.slice(0, -1)}\uff10`],
    ])('rejects %s', (_case, input) => {
      expect(parseFileId(input)).toBeNull();
    });

    it('rejects values that are not strings', () => {
      for (const value of [undefined, null, 42, ['file_x'], { id: VALID }]) {
        expect(parseFileId(value as unknown as string)).toBeNull();
      }
    });
  });

  describe(fileIdFromUuid.name, () => {
    it.each(['', 'not-a-uuid', '0193a4c2-7f1e-7c3b-9d2a-1b2c3d4e5f6', '0193a4c2-7f1e-7c3b-9d2a-1b2c3d4e5f6g'])(
      'refuses %p',
      (uuid) => {
        expect(() => fileIdFromUuid(uuid)).toThrow(RangeError);
      },
    );
  });
});

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
