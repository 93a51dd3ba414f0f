import { newFileId } from '../../src/files/file-id';
import { FilesErrorCode } from '../../src/files/files.errors';
import { ListQueryPipe, MAX_LIST_LIMIT, parseListQuery } from '../../src/files/list-query';
import { expectFilesError } from './support/expect-files-error';

const { InvalidValue } = FilesErrorCode;
const someId = () => newFileId(Date.UTC(2026, 10, 26)).publicId;

describe(parseListQuery.name, () => {
  it('defaults to the largest page, newest first, no cursor, every purpose', () => {
    expect(parseListQuery({})).toEqual({ limit: 10_000, order: 'desc', after: undefined, purpose: undefined });
    expect(MAX_LIST_LIMIT).toBe(10_000);
  });

  it('passes through every valid parameter', () => {
    const after = someId();
    expect(parseListQuery({ limit: '25', order: 'asc', after, purpose: 'batch' })).toEqual({
      limit: 25,
      order: 'asc',
      after,
      purpose: 'batch',
    });
  });

  describe('limit', () => {
    it.each([
      ['1', 1],
      ['10000', 10_000],
      ['42', 42],
      ['007', 7],
    ])('accepts %p', (raw, expected) => {
      expect(parseListQuery({ limit: raw }).limit).toBe(expected);
    });

    it.each(['0', '10001', '999999', '1000000', '-1', '1.5', '1e3', ' 10', '10 ', '+10', '0x10', '', 'ten', 'NaN', 'Infinity'])(
      'refuses %p',
      (raw) => {
        const error = expectFilesError(() => parseListQuery({ limit: raw }), InvalidValue, 'limit');
        expect(error.message).toContain('limit');
      },
    );

    it('refuses a limit given twice', () => {
      expectFilesError(() => parseListQuery({ limit: ['10', '20'] }), InvalidValue, 'limit');
    });
  });

  describe('order', () => {
    it.each(['asc', 'desc'])('accepts %p', (order) => {
      expect(parseListQuery({ order }).order).toBe(order);
    });

    it.each(['ASC', 'Desc', 'ascending', '', ' asc', 'created_at'])('refuses %p', (order) => {
      expectFilesError(() => parseListQuery({ order }), InvalidValue, 'order');
    });

    it('refuses an order given twice', () => {
      expectFilesError(() => parseListQuery({ order: ['asc', 'asc'] }), InvalidValue, 'order');
    });
  });

  describe('after', () => {
    it('accepts any well-formed file id, whether or not the file exists', () => {
      const after = someId();
      expect(parseListQuery({ after }).after).toBe(after);
    });

    it.each([
      ['an empty string', ''],
      ['a wrong prefix', 'batch_01jd5x7k9m3n4p5q6r7s8t9v0w'],
      ['an uppercase id', 'file_01JD5X7K9M3N4P5Q6R7S8T9V0W'],
      ['a truncated id', 'file_01jd5x7k9m3n4p5q6r7s8t9v0'],
      ['an id with padding', ' file_01jd5x7k9m3n4p5q6r7s8t9v0w'],
      ['an overflowing id', `file_8${'0'.repeat(25)}`],
      ['an SQL fragment', "file_' OR 1=1 --"],
      ['a uuid', '0193a4c2-7f1e-7c3b-9d2a-1b2c3d4e5f60'],
    ])('refuses %s', (_case, after) => {
      expectFilesError(() => parseListQuery({ after }), InvalidValue, 'after');
    });

    it('refuses a cursor given twice', () => {
      expectFilesError(() => parseListQuery({ after: [someId(), someId()] }), InvalidValue, 'after');
    });

    it('quotes at most a short prefix of a huge value', () => {
      const error = expectFilesError(() => parseListQuery({ after: 'x'.repeat(5000) }), InvalidValue, 'after');
      expect(error.message.length).toBeLessThan(300);
    });
  });

  describe('purpose', () => {
    it.each(['batch', 'batch-output', 'fine-tune'])('filters by %p', (purpose) => {
      expect(parseListQuery({ purpose }).purpose).toBe(purpose);
    });

    it("accepts OpenAI's spelling batch_output for batch-output files", () => {
      expect(parseListQuery({ purpose: 'batch_output' }).purpose).toBe('batch-output');
    });

    it.each(['assistants', 'Batch', '', 'batch,batch-output', 'batch_input'])('refuses %p', (purpose) => {
      expectFilesError(() => parseListQuery({ purpose }), InvalidValue, 'purpose');
    });

    it('refuses a purpose given twice', () => {
      expectFilesError(() => parseListQuery({ purpose: ['batch', 'batch-output'] }), InvalidValue, 'purpose');
    });
  });

  it('ignores unknown parameters, as OpenAI does', () => {
    expect(parseListQuery({ foo: 'bar', before: someId() })).toEqual(parseListQuery({}));
  });

  it('refuses a nested-object parameter', () => {
    expectFilesError(() => parseListQuery({ limit: { gt: '1' } }), InvalidValue, 'limit');
  });
});

describe(ListQueryPipe.name, () => {
  it('validates like parseListQuery and treats a missing query as empty', () => {
    const pipe = new ListQueryPipe();
    expect(pipe.transform({ limit: '3' }).limit).toBe(3);
    expect(pipe.transform(undefined as unknown as Record<string, unknown>).limit).toBe(MAX_LIST_LIMIT);
    expectFilesError(() => pipe.transform({ limit: '0' }), InvalidValue, 'limit');
  });
});
