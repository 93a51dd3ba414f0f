import { BASES, startHarness, type Harness } from '../support/http/harness';
import { clientFor, expectOpenAiError, jsonlBytes } from '../support/http/api';
import type { FormPart } from '../support/http/multipart';
import { expectNothingLeftBehind, residue } from '../support/http/residue';

const file = (data = jsonlBytes(64)): FormPart => ({ name: 'file', filename: 'requests.jsonl', data });
const field = (name: string, value: string): FormPart => ({ name, value });
const purpose = (value = 'batch') => field('purpose', value);
const seconds = (value: string) => field('expires_after[seconds]', value);

interface RefusedCase {
  name: string;
  parts: FormPart[];
  code: string;
  param: string | null;
  message?: RegExp;
}

/** Every way the form's values can be wrong, with the exact error each must produce. */
const CASES: RefusedCase[] = [
  { name: 'no file part', parts: [purpose()], code: 'missing_required_parameter', param: 'file', message: /'file'/ },
  { name: 'no purpose', parts: [file()], code: 'missing_required_parameter', param: 'purpose', message: /'purpose'/ },
  { name: 'fine-tune before the file', parts: [purpose('fine-tune'), file()], code: 'unsupported_purpose', param: 'purpose', message: /not yet supported/ },
  { name: 'fine-tune after the file', parts: [file(), purpose('fine-tune')], code: 'unsupported_purpose', param: 'purpose', message: /not yet supported/ },
  { name: 'batch-output before the file', parts: [purpose('batch-output'), file()], code: 'invalid_value', param: 'purpose', message: /batch-output/ },
  { name: 'batch-output after the file', parts: [file(), purpose('batch-output')], code: 'invalid_value', param: 'purpose', message: /batch-output/ },
  { name: 'an unknown purpose', parts: [purpose('assistants'), file()], code: 'invalid_value', param: 'purpose', message: /assistants/ },
  { name: 'an unknown purpose after the file', parts: [file(), purpose('vision')], code: 'invalid_value', param: 'purpose', message: /vision/ },
  { name: 'an empty purpose', parts: [purpose(''), file()], code: 'invalid_value', param: 'purpose' },
  { name: 'purpose given twice', parts: [purpose(), purpose(), file()], code: 'invalid_value', param: 'purpose' },
  { name: 'an anchor other than created_at', parts: [purpose(), field('expires_after[anchor]', 'last_active_at'), file()], code: 'invalid_value', param: 'expires_after.anchor', message: /last_active_at/ },
  { name: 'an anchor after the file', parts: [file(), purpose(), field('expires_after[anchor]', 'now')], code: 'invalid_value', param: 'expires_after.anchor' },
  { name: 'seconds 3599 (below one hour)', parts: [purpose(), seconds('3599'), file()], code: 'invalid_value', param: 'expires_after.seconds', message: /3600/ },
  { name: 'seconds 2592001 (above 30 days)', parts: [purpose(), seconds('2592001'), file()], code: 'invalid_value', param: 'expires_after.seconds', message: /2592000/ },
  { name: 'seconds "abc"', parts: [purpose(), seconds('abc'), file()], code: 'invalid_value', param: 'expires_after.seconds', message: /abc/ },
  { name: 'seconds "-3600"', parts: [purpose(), seconds('-3600'), file()], code: 'invalid_value', param: 'expires_after.seconds' },
  { name: 'seconds "3600.5"', parts: [purpose(), seconds('3600.5'), file()], code: 'invalid_value', param: 'expires_after.seconds' },
  { name: 'seconds empty', parts: [purpose(), seconds(''), file()], code: 'invalid_value', param: 'expires_after.seconds' },
  { name: 'seconds 3599 after the file', parts: [file(), purpose(), seconds('3599')], code: 'invalid_value', param: 'expires_after.seconds' },
  { name: 'an unknown expires_after key', parts: [purpose(), field('expires_after[days]', '3'), file()], code: 'invalid_value', param: 'expires_after.days' },
  { name: 'expires_after that is not JSON', parts: [purpose(), field('expires_after', '{not json'), file()], code: 'invalid_value', param: 'expires_after' },
  { name: 'expires_after as a JSON array', parts: [purpose(), field('expires_after', '[3600]'), file()], code: 'invalid_value', param: 'expires_after' },
  { name: 'JSON expires_after with seconds 100', parts: [purpose(), field('expires_after', '{"anchor":"created_at","seconds":100}'), file()], code: 'invalid_value', param: 'expires_after.seconds' },
  { name: 'JSON expires_after with a fractional seconds', parts: [purpose(), field('expires_after', '{"seconds":3600.5}'), file()], code: 'invalid_value', param: 'expires_after.seconds' },
  { name: 'JSON expires_after with a bad anchor', parts: [file(), purpose(), field('expires_after', '{"anchor":"expires_at","seconds":3600}')], code: 'invalid_value', param: 'expires_after.anchor' },
  { name: 'an empty file', parts: [purpose(), file(Buffer.alloc(0))], code: 'empty_file', param: 'file', message: /empty/ },
  { name: 'an empty file, fields after it', parts: [file(Buffer.alloc(0)), purpose()], code: 'empty_file', param: 'file' },
  { name: 'an unknown field before the file', parts: [purpose(), field('model', 'gpt-4o'), file()], code: 'invalid_value', param: 'model', message: /model/ },
  { name: 'an unknown field after the file', parts: [purpose(), file(), field('user', 'x')], code: 'invalid_value', param: 'user', message: /user/ },
  { name: 'a text field named file beside the file part', parts: [purpose(), field('file', 'not a file'), file()], code: 'invalid_value', param: 'file' },
  { name: 'an oversized purpose value', parts: [purpose('b'.repeat(16 * 1024 + 1)), file()], code: 'invalid_value', param: 'purpose', message: /too long/ },
  { name: 'an oversized unknown field after the file', parts: [purpose(), file(), field('notes', 'n'.repeat(20_000))], code: 'invalid_value', param: 'notes', message: /too long/ },
];

describe('POST /files (refused values)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
    // Some data of the same owner and of others, so "unchanged" is checked against a non-empty state.
    await clientFor(h, BASES[0]).create(h.alice, { data: jsonlBytes(500) });
    await clientFor(h, BASES[0]).create(h.bob, { data: jsonlBytes(700) });
  });
  afterAll(async () => h?.close());

  describe.each(BASES)('under %s', (base) => {
    it.each(CASES)('refuses $name with 400 $code (param $param) and leaves nothing behind', async ({ parts, code, param, message }) => {
      const before = await residue(h);
      const res = await clientFor(h, base).postForm(h.alice, parts);
      expectOpenAiError(res, 400, { code, param, message });
      await expectNothingLeftBehind(h, before);
    });

    it('accepts the same form once the bad value is fixed (the cases above are refused for their value only)', async () => {
      const res = await clientFor(h, base).postForm(h.carol, [purpose(), seconds('3600'), field('expires_after[anchor]', 'created_at'), file()]);
      expect(res.status).toBe(200);
    });

    it.each(['3600', '2592000'])('accepts the boundary value seconds=%s', async (value) => {
      const res = await clientFor(h, base).postForm(h.carol, [purpose(), seconds(value), file()]);
      expect(res.status).toBe(200);
      expect(res.body.expires_at - res.body.created_at).toBe(Number(value));
    });
  });
});
