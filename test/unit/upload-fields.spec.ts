import { FilesErrorCode } from '../../src/files/files.errors';
import {
  checkEarlyFields,
  DEFAULT_EXPIRES_AFTER_SECONDS,
  MAX_EXPIRES_AFTER_SECONDS,
  MIN_EXPIRES_AFTER_SECONDS,
  parseExpiresAfter,
  parsePurpose,
  parseUploadFields,
} from '../../src/files/upload/upload-fields';
import { expectFilesError } from './support/expect-files-error';

const { InvalidValue, MissingParameter, UnsupportedPurpose } = FilesErrorCode;

/** A form as multer hands it over: bracketed fields become a nested object. */
const form = (fields: Record<string, unknown> = {}) => ({ purpose: 'batch', ...fields });

describe('upload-fields', () => {
  describe(parseUploadFields.name, () => {
    it('accepts purpose batch with the default expiry of 30 days', () => {
      expect(parseUploadFields(form())).toEqual({ purpose: 'batch', expiresAfterSeconds: 2_592_000 });
      expect(DEFAULT_EXPIRES_AFTER_SECONDS).toBe(30 * 24 * 3600);
    });

    it('accepts expires_after sent as bracketed fields', () => {
      const fields = form({ expires_after: { anchor: 'created_at', seconds: '7200' } });
      expect(parseUploadFields(fields)).toEqual({ purpose: 'batch', expiresAfterSeconds: 7200 });
    });

    it('accepts expires_after sent as one JSON-valued field', () => {
      const fields = form({ expires_after: '{"anchor":"created_at","seconds":86400}' });
      expect(parseUploadFields(fields).expiresAfterSeconds).toBe(86_400);
    });

    it('refuses an unknown top-level field, naming it', () => {
      const error = expectFilesError(() => parseUploadFields(form({ purpos: 'batch' })), InvalidValue, 'purpos');
      expect(error.message).toContain('purpos');
    });

    it.each(['model', 'expires_at', 'filename', 'expires_after_seconds'])('refuses the unknown field %p', (name) => {
      expectFilesError(() => parseUploadFields(form({ [name]: 'x' })), InvalidValue, name);
    });

    it('refuses a file sent as a text field', () => {
      const error = expectFilesError(() => parseUploadFields(form({ file: '{"a":1}' })), InvalidValue, 'file');
      expect(error.message).toMatch(/file upload/);
    });

    it('reports a missing purpose', () => {
      expectFilesError(() => parseUploadFields({}), MissingParameter, 'purpose');
    });
  });

  describe(checkEarlyFields.name, () => {
    it('accepts a partial form: no purpose yet means no purpose to size the upload by', () => {
      expect(checkEarlyFields({})).toBeUndefined();
      expect(checkEarlyFields({ expires_after: { anchor: 'created_at', seconds: '3600' } })).toBeUndefined();
      expect(checkEarlyFields({ purpose: 'batch' })).toBe('batch');
    });

    it.each([
      ['an unknown field', { model: 'x' }, InvalidValue, 'model'],
      ['file as a text field', { file: 'x' }, InvalidValue, 'file'],
      ['a bad expiry', { expires_after: { seconds: '10' } }, InvalidValue, 'expires_after.seconds'],
      ['fine-tune', { purpose: 'fine-tune' }, UnsupportedPurpose, 'purpose'],
      ['batch-output', { purpose: 'batch-output' }, InvalidValue, 'purpose'],
      ['a duplicated purpose', { purpose: ['batch', 'batch'] }, InvalidValue, 'purpose'],
    ])('refuses %s already', (_case, fields, code, param) => {
      expectFilesError(() => checkEarlyFields(fields), code, param);
    });
  });

  describe(parsePurpose.name, () => {
    it('accepts batch', () => {
      expect(parsePurpose('batch')).toBe('batch');
    });

    it('refuses fine-tune as not yet supported', () => {
      const error = expectFilesError(() => parsePurpose('fine-tune'), UnsupportedPurpose, 'purpose');
      expect(error.message).toMatch(/not yet supported/);
    });

    it('refuses batch-output, which only the platform creates', () => {
      const error = expectFilesError(() => parsePurpose('batch-output'), InvalidValue, 'purpose');
      expect(error.message).toMatch(/platform/);
    });

    it.each(['assistants', 'vision', 'user_data', 'evals', 'Batch', 'BATCH', ' batch', 'batch ', '', 'fine_tune', 'batch\n'])(
      'refuses %p as an invalid value',
      (purpose) => {
        expectFilesError(() => parsePurpose(purpose), InvalidValue, 'purpose');
      },
    );

    it('reports a missing purpose', () => {
      const error = expectFilesError(() => parsePurpose(undefined), MissingParameter, 'purpose');
      expect(error.message).toContain('purpose');
    });

    it('refuses a purpose sent twice', () => {
      expectFilesError(() => parsePurpose(['batch', 'batch']), InvalidValue, 'purpose');
      expectFilesError(() => parsePurpose(['batch', 'fine-tune']), InvalidValue, 'purpose');
    });

    it('refuses a purpose that is not a string', () => {
      expectFilesError(() => parsePurpose({ value: 'batch' }), InvalidValue, 'purpose');
      expectFilesError(() => parsePurpose(null), InvalidValue, 'purpose');
    });

    it('shows at most a short prefix of a huge value in the message', () => {
      const error = expectFilesError(() => parsePurpose('x'.repeat(10_000)), InvalidValue, 'purpose');
      expect(error.message.length).toBeLessThan(300);
    });
  });

  describe(parseExpiresAfter.name, () => {
    const seconds = (value: unknown) => parseExpiresAfter({ anchor: 'created_at', seconds: value });

    it('defaults to 30 days when absent', () => {
      expect(parseExpiresAfter(undefined)).toBe(MAX_EXPIRES_AFTER_SECONDS);
    });

    it('defaults the seconds when only the anchor is given', () => {
      expect(parseExpiresAfter({ anchor: 'created_at' })).toBe(DEFAULT_EXPIRES_AFTER_SECONDS);
      expect(parseExpiresAfter('{"anchor":"created_at"}')).toBe(DEFAULT_EXPIRES_AFTER_SECONDS);
    });

    it('accepts both bounds, inclusive', () => {
      expect(seconds(String(MIN_EXPIRES_AFTER_SECONDS))).toBe(3600);
      expect(seconds(String(MAX_EXPIRES_AFTER_SECONDS))).toBe(2_592_000);
      expect(seconds(3600)).toBe(3600);
      expect(seconds(2_592_000)).toBe(2_592_000);
    });

    it.each([
      ['one below the minimum', '3599'],
      ['one above the maximum', '2592001'],
      ['zero', '0'],
      ['a fraction', '3600.5'],
      ['exponent notation', '1e4'],
      ['a negative number', '-1'],
      ['a leading space', ' 3600'],
      ['a trailing space', '3600 '],
      ['a plus sign', '+3600'],
      ['hex', '0xe10'],
      ['an empty string', ''],
      ['words', 'one hour'],
      ['a huge number', '99999999999999999999999'],
      ['a number past 2^53 that parses as an integer', '9007199254740993'],
      ['a JSON fraction', 3600.5],
      ['a JSON number below the minimum', 3599],
      ['a JSON number above the maximum', 2_592_001],
      ['a non-finite number', Number.POSITIVE_INFINITY],
      ['NaN', Number.NaN],
      ['a boolean', true],
      ['null', null],
      ['a duplicated field (array)', ['3600', '3600']],
      ['an object', { value: 3600 }],
    ])('refuses seconds given as %s', (_case, value) => {
      expectFilesError(() => seconds(value), InvalidValue, 'expires_after.seconds');
    });

    it.each([
      ['last_active_at', 'last_active_at'],
      ['an uppercase anchor', 'CREATED_AT'],
      ['an empty anchor', ''],
      ['a duplicated anchor (array)', ['created_at', 'created_at']],
      ['null', null],
    ])('refuses the anchor %s', (_case, anchor) => {
      expectFilesError(() => parseExpiresAfter({ anchor, seconds: '3600' }), InvalidValue, 'expires_after.anchor');
    });

    it('refuses an unknown key inside expires_after, naming it', () => {
      expectFilesError(
        () => parseExpiresAfter({ anchor: 'created_at', seconds: '3600', days: '1' }),
        InvalidValue,
        'expires_after.days',
      );
      expectFilesError(
        () => parseExpiresAfter('{"anchor":"created_at","seconds":3600,"__proto__":{"x":1}}'),
        InvalidValue,
        'expires_after.__proto__',
      );
    });

    it('validates the JSON form by the same rules as the bracketed one', () => {
      expect(parseExpiresAfter('{"anchor":"created_at","seconds":"3600"}')).toBe(3600);
      expectFilesError(() => parseExpiresAfter('{"anchor":"created_at","seconds":3599}'), InvalidValue, 'expires_after.seconds');
      expectFilesError(() => parseExpiresAfter('{"anchor":"updated_at","seconds":3600}'), InvalidValue, 'expires_after.anchor');
      expectFilesError(() => parseExpiresAfter('{"anchor":"created_at","seconds":3600.5}'), InvalidValue, 'expires_after.seconds');
    });

    it.each([
      ['malformed JSON', '{"anchor":"created_at",'],
      ['a bare number', '3600'],
      ['a JSON string', '"created_at"'],
      ['JSON null', 'null'],
      ['a JSON array', '[{"anchor":"created_at","seconds":3600}]'],
      ['an empty string', ''],
      ['a duplicated field (array)', ['{"anchor":"created_at","seconds":3600}', '{"anchor":"created_at","seconds":3600}']],
      ['a number', 3600],
    ])('refuses expires_after given as %s', (_case, value) => {
      expectFilesError(() => parseExpiresAfter(value), InvalidValue, 'expires_after');
    });
  });
});
