import { parseRange } from '../../src/files/download';

const SIZE = 1000;

describe(parseRange.name, () => {
  it('means the whole file when there is no Range header', () => {
    expect(parseRange(undefined, SIZE)).toBeUndefined();
  });

  it.each([
    ['bytes=0-499', { start: 0, end: 499 }],
    ['bytes=0-0', { start: 0, end: 0 }],
    ['bytes=500-999', { start: 500, end: 999 }],
    ['bytes=999-999', { start: 999, end: 999 }],
    ['bytes=0-999', { start: 0, end: 999 }],
  ])('reads the closed range %p', (header, expected) => {
    expect(parseRange(header, SIZE)).toEqual(expected);
  });

  it('clamps an end past the last byte to the last byte', () => {
    expect(parseRange('bytes=900-5000', SIZE)).toEqual({ start: 900, end: 999 });
    expect(parseRange('bytes=0-999999999999999', SIZE)).toEqual({ start: 0, end: 999 });
  });

  it('reads an open range "a-" to the end', () => {
    expect(parseRange('bytes=100-', SIZE)).toEqual({ start: 100, end: 999 });
    expect(parseRange('bytes=0-', SIZE)).toEqual({ start: 0, end: 999 });
    expect(parseRange('bytes=999-', SIZE)).toEqual({ start: 999, end: 999 });
  });

  it('reads a suffix range "-n" as the last n bytes', () => {
    expect(parseRange('bytes=-1', SIZE)).toEqual({ start: 999, end: 999 });
    expect(parseRange('bytes=-250', SIZE)).toEqual({ start: 750, end: 999 });
  });

  it('serves the whole file for a suffix longer than the file', () => {
    expect(parseRange('bytes=-1000', SIZE)).toEqual({ start: 0, end: 999 });
    expect(parseRange('bytes=-5000', SIZE)).toEqual({ start: 0, end: 999 });
  });

  it('tolerates surrounding whitespace', () => {
    expect(parseRange('  bytes=1-2 ', SIZE)).toEqual({ start: 1, end: 2 });
  });

  it.each(['bytes=1000-', 'bytes=1000-1000', 'bytes=5000-6000', 'bytes=-0'])('is unsatisfiable for %p', (header) => {
    expect(parseRange(header, SIZE)).toBe('unsatisfiable');
  });

  it.each([
    ['a reversed range', 'bytes=500-100'],
    ['several ranges', 'bytes=0-1,5-6'],
    ['several ranges with spaces', 'bytes=0-1, 5-6'],
    ['another unit', 'items=0-1'],
    ['no unit', '0-499'],
    ['a bare dash', 'bytes=-'],
    ['an empty header', ''],
    ['garbage', 'give me everything'],
    ['negative numbers', 'bytes=-5-10'],
    ['a fraction', 'bytes=1.5-3'],
    ['hex', 'bytes=0x10-0x20'],
    ['a number too long to be exact', 'bytes=0-99999999999999999'],
    ['a colon instead of =', 'bytes:0-1'],
  ])('ignores %s and serves the whole file', (_case, header) => {
    expect(parseRange(header, SIZE)).toBeUndefined();
  });

  it('never returns a range outside the file', () => {
    const headers = ['bytes=0-', 'bytes=-1', 'bytes=-999999', 'bytes=10-20', 'bytes=999-99999', 'bytes=0-0'];
    for (const size of [1, 2, 10, 1000]) {
      for (const header of headers) {
        const range = parseRange(header, size);
        if (range === undefined || range === 'unsatisfiable') continue;
        expect(range.start).toBeGreaterThanOrEqual(0);
        expect(range.start).toBeLessThanOrEqual(range.end);
        expect(range.end).toBeLessThan(size);
      }
    }
  });
});
