import { validateHeaderValue } from 'node:http';
import { contentDisposition, MAX_FILENAME_BYTES, sanitizeFilename } from '../../src/files/filename';

const utf8Bytes = (s: string) => Buffer.byteLength(s, 'utf8');
/** True when the string survives a UTF-8 round trip, i.e. has no lone surrogates. */
const isWellFormed = (s: string) => Buffer.from(s, 'utf8').toString('utf8') === s;

describe('filename', () => {
  describe(sanitizeFilename.name, () => {
    it('keeps an ordinary name as it is', () => {
      expect(sanitizeFilename('batch_input-2026.11.26.jsonl')).toBe('batch_input-2026.11.26.jsonl');
      expect(sanitizeFilename('.env')).toBe('.env');
      expect(sanitizeFilename('résumé 日本語.jsonl')).toBe('résumé 日本語.jsonl');
    });

    it.each([
      ['../../etc/passwd', 'passwd'],
      ['/etc/passwd', 'passwd'],
      ['..\\..\\Windows\\System32\\cmd.exe', 'cmd.exe'],
      ['C:\\Users\\me\\input.jsonl', 'input.jsonl'],
      ['\\\\server\\share\\input.jsonl', 'input.jsonl'],
      ['dir/sub\\mixed/input.jsonl', 'input.jsonl'],
      ['./input.jsonl', 'input.jsonl'],
    ])('drops the directory part of %p', (raw, expected) => {
      expect(sanitizeFilename(raw)).toBe(expected);
    });

    it('removes CR, LF and the other C0/C1 control characters', () => {
      const name = sanitizeFilename('a\r\nContent-Type: text\tb\u0000c\u001b[31m\u007f\u0085d.jsonl');
      expect(name).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
      expect(name).toBe('aContent-Type: textbc[31md.jsonl');
    });

    it('removes NUL bytes that could truncate the name in C code', () => {
      expect(sanitizeFilename('safe.jsonl\u0000.exe')).toBe('safe.jsonl.exe');
    });

    it('removes Unicode line separators and bidirectional overrides', () => {
      // U+202E would make "invoice\u202Elnosj.exe" display as "invoiceexe.jsonl".
      expect(sanitizeFilename('invoice\u202Elnosj.exe')).toBe('invoicelnosj.exe');
      const name = sanitizeFilename('a\u2028b\u2029c\u200ed\u200fe\u202af\u202bg\u202ch\u202di\u2066j\u2067k\u2068l\u2069m.txt');
      expect(name).toBe('abcdefghijklm.txt');
    });

    it('removes every Unicode Bidi_Control character', () => {
      const all = Array.from({ length: 0x10000 }, (_, c) => String.fromCharCode(c)).filter((c) => /\p{Bidi_Control}/u.test(c));
      expect(all.length).toBeGreaterThanOrEqual(12);
      const name = sanitizeFilename(`a${all.join('')}b.txt`);
      expect(name).toBe('ab.txt');
    });

    it('replaces lone surrogates so the name is valid UTF-8', () => {
      for (const raw of ['a\ud800b.txt', 'a\udc00b.txt', 'end\ud83d', '\ude00start']) {
        const name = sanitizeFilename(raw);
        expect(isWellFormed(name)).toBe(true);
        expect(name).toContain('\ufffd');
      }
    });

    it('keeps valid surrogate pairs (emoji) intact', () => {
      expect(sanitizeFilename('data 😀.jsonl')).toBe('data 😀.jsonl');
    });

    it('normalizes to NFC', () => {
      expect(sanitizeFilename('cafe\u0301.jsonl')).toBe('caf\u00e9.jsonl');
      expect(sanitizeFilename('\u1100\u1161.txt')).toBe('\uac00.txt');
    });

    it('is NFC even when a removed control character separated a base letter from its accent', () => {
      const name = sanitizeFilename('cafe\u0000\u0301.jsonl');
      expect(name).toBe(name.normalize('NFC'));
      expect(name).toBe('caf\u00e9.jsonl');
      expect(sanitizeFilename('cafe\u200e\u0301.jsonl')).toBe('caf\u00e9.jsonl');
    });

    it.each([
      ['an empty string', ''],
      ['only spaces', '   '],
      ['a dot', '.'],
      ['two dots', '..'],
      ['two dots with a path', '../..'],
      ['a trailing slash', 'dir/'],
      ['a trailing backslash', 'dir\\'],
      ['only control characters', '\r\n\u0000'],
      ['dots hidden by a bidi mark', '.\u202e.'],
      ['dots padded with spaces', ' .. '],
    ])('falls back to "file" for %s', (_case, raw) => {
      expect(sanitizeFilename(raw)).toBe('file');
    });

    it('falls back to "file" when no name was sent', () => {
      expect(sanitizeFilename(undefined)).toBe('file');
      expect(sanitizeFilename(null)).toBe('file');
    });

    it('trims surrounding whitespace', () => {
      expect(sanitizeFilename('  input.jsonl \t')).toBe('input.jsonl');
    });

    it('keeps a name of exactly 255 UTF-8 bytes unchanged', () => {
      const raw = `${'a'.repeat(MAX_FILENAME_BYTES - 6)}.jsonl`;
      expect(utf8Bytes(raw)).toBe(MAX_FILENAME_BYTES);
      expect(sanitizeFilename(raw)).toBe(raw);
    });

    it('truncates an ASCII name to 255 bytes, keeping the extension', () => {
      const name = sanitizeFilename(`${'a'.repeat(300)}.jsonl`);
      expect(utf8Bytes(name)).toBe(MAX_FILENAME_BYTES);
      expect(name).toBe(`${'a'.repeat(MAX_FILENAME_BYTES - 6)}.jsonl`);
    });

    it.each([
      ['two-byte', 'é'],
      ['three-byte', '日'],
      ['four-byte (surrogate pair)', '😀'],
    ])('truncates a %s name on a character boundary, keeping the extension', (_case, char) => {
      const name = sanitizeFilename(`${char.repeat(200)}.jsonl`);
      expect(utf8Bytes(name)).toBeLessThanOrEqual(MAX_FILENAME_BYTES);
      expect(utf8Bytes(name)).toBeGreaterThan(MAX_FILENAME_BYTES - utf8Bytes(char));
      expect(name.endsWith('.jsonl')).toBe(true);
      expect(isWellFormed(name)).toBe(true);
      expect(name.slice(0, -'.jsonl'.length)).toBe(char.repeat([...name].length - '.jsonl'.length));
    });

    it('truncates a long name without an extension to 255 bytes', () => {
      expect(sanitizeFilename('x'.repeat(1000))).toBe('x'.repeat(MAX_FILENAME_BYTES));
    });

    it('never returns more than 255 bytes, even for an absurdly long "extension"', () => {
      const name = sanitizeFilename(`${'a'.repeat(100)}.${'b'.repeat(400)}`);
      expect(utf8Bytes(name)).toBeLessThanOrEqual(MAX_FILENAME_BYTES);
      expect(name.length).toBeGreaterThan(0);
    });

    it('is idempotent', () => {
      const inputs = [
        '../../etc/passwd',
        'a\r\nb\u202e.exe',
        'cafe\u0301 \ud800.jsonl',
        `${'é'.repeat(300)}.jsonl`,
        '  ..  ',
        'x'.repeat(400),
      ];
      for (const raw of inputs) {
        const once = sanitizeFilename(raw);
        expect(sanitizeFilename(once)).toBe(once);
      }
    });
  });

  describe(contentDisposition.name, () => {
    /** The filename* value, percent-decoded. */
    const extended = (header: string) => {
      const match = /; filename\*=UTF-8''([^;]*)$/.exec(header);
      if (!match) throw new Error(`no filename* in ${header}`);
      return match[1];
    };
    const fallback = (header: string) => {
      const match = /^attachment; filename="([^"]*)"; filename\*=/.exec(header);
      if (!match) throw new Error(`no quoted filename in ${header}`);
      return match[1];
    };

    it('formats a plain ASCII name exactly', () => {
      expect(contentDisposition('input.jsonl')).toBe(`attachment; filename="input.jsonl"; filename*=UTF-8''input.jsonl`);
    });

    it('percent-encodes a non-ASCII name exactly in filename* and replaces it with _ in filename', () => {
      expect(contentDisposition('résumé 😀.jsonl')).toBe(
        `attachment; filename="r_sum_ __.jsonl"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%F0%9F%98%80.jsonl`,
      );
    });

    it("encodes ' ( ) * which are not RFC 5987 attr-chars", () => {
      expect(extended(contentDisposition("it's (a)*.txt"))).toBe('it%27s%20%28a%29%2A.txt');
    });

    it.each([
      ['a double quote', 'a"b.txt'],
      ['a backslash', 'a\\b.txt'],
      ['CR and LF', 'a\r\nSet-Cookie: x=1.txt'],
      ['a NUL', 'a\u0000b.txt'],
      ['a percent sign', '100%.txt'],
      ['a semicolon and equals sign', 'a; filename=evil.exe'],
      ['non-ASCII text', 'ファイル.jsonl'],
      ['a bidi override', 'a\u202etxt.exe'],
    ])('produces a valid, unambiguous header for a name with %s', (_case, name) => {
      const header = contentDisposition(name);
      expect(() => validateHeaderValue('Content-Disposition', header)).not.toThrow();
      expect(header).toMatch(/^[\x20-\x7e]*$/);
      const ascii = fallback(header);
      expect(ascii).not.toMatch(/["\\%]/);
      expect(ascii).toMatch(/^[\x20-\x7e]*$/);
      expect(ascii).toHaveLength(name.length);
      const value = extended(header);
      // RFC 5987 value-chars: attr-char or a pct-encoded octet, nothing else.
      expect(value).toMatch(/^(?:[A-Za-z0-9!#$&+\-.^_`|~]|%[0-9A-F]{2})*$/);
      expect(decodeURIComponent(value)).toBe(name);
    });

    it('keeps printable ASCII other than " \\ and % in the fallback', () => {
      expect(fallback(contentDisposition('a b-c_d.(1)!.txt'))).toBe('a b-c_d.(1)!.txt');
    });
  });
});
