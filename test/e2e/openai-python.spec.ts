import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { startTestApp, type TestApp } from '../support/app';
import { E2E_KEYS, e2eApiKeysEnv } from '../support/e2e/owners';
import { residueOf } from '../support/e2e/residue';

// jest.config.js sets testTimeout per project, where Jest ignores it (it is a global option).
jest.setTimeout(60_000);

const run = promisify(execFile);
const REPO = path.resolve(__dirname, '../..');
const SCRIPT = path.join(REPO, 'scripts/python-smoke.py');
/** Where CI (and a developer, once) installs the official openai Python package. */
const PYTHONPATH = process.env.FILES_TEST_PYTHONPATH ?? path.join(REPO, '.cache/python-openai');
const PYTHON = process.env.FILES_TEST_PYTHON ?? 'python3';

function pythonEnv(): NodeJS.ProcessEnv {
  const inherited = process.env.PYTHONPATH;
  return { ...process.env, PYTHONPATH: inherited ? `${PYTHONPATH}${path.delimiter}${inherited}` : PYTHONPATH };
}

/** Fails (never skips) when the client is missing: a skipped e2e test would look like a pass. */
async function requireOpenaiPackage(): Promise<string> {
  try {
    const { stdout } = await run(PYTHON, ['-c', 'import openai; print(openai.__version__)'], { env: pythonEnv() });
    return stdout.trim();
  } catch (error) {
    throw new Error(
      `The official openai Python package is not importable from ${PYTHONPATH} with ${PYTHON}.\n` +
        `Run: pip install --target .cache/python-openai openai   (or point FILES_TEST_PYTHONPATH at an install)\n` +
        `Cause: ${(error as Error).message}`,
    );
  }
}

interface SmokeSummary {
  ok: boolean;
  failures: string[];
  openai_version: string;
  form_field_order: string[][];
  created: { id: string; bytes: number; created_at: number; expires_at: number; filename: string; purpose: string; status: string }[];
  listed_ids: string[];
  list_requests: number;
  retrieved: { id: string };
  content: { bytes: number; sha256: string; expected_sha256: string };
  deleted: { id: string; object: string; deleted: boolean }[];
  not_found: { exception: string; status_code: number };
  fine_tune: { exception: string; status_code: number; code: string; param: string };
  traceback?: string;
}

async function runSmoke(baseUrl: string, apiKey: string): Promise<SmokeSummary> {
  const result = await run(PYTHON, [SCRIPT, baseUrl, apiKey], { env: pythonEnv(), timeout: 90_000 }).catch(
    (error: { code?: number; stdout?: string; stderr?: string }) => {
      // Exit 1 still prints a summary; its failures make the assertions below say what broke.
      if (error.code === 1 && error.stdout) return { stdout: error.stdout, stderr: error.stderr ?? '' };
      throw new Error(`python-smoke.py failed (exit ${error.code}):\n${error.stderr}\n${error.stdout}`);
    },
  );
  return JSON.parse(result.stdout) as SmokeSummary;
}

describe('files-api through the official openai Python client (S3 storage)', () => {
  let t: TestApp;
  let version: string;

  beforeAll(async () => {
    [version, t] = await Promise.all([requireOpenaiPackage(), startTestApp({ storage: 's3', env: e2eApiKeysEnv() })]);
  });
  afterAll(async () => t?.close());

  it.each(['/v1', '/v1/openai'])('passes scripts/python-smoke.py with base URL %s and leaves nothing behind', async (base) => {
    const summary = await runSmoke(`${t.origin}${base}`, E2E_KEYS.python);

    expect(summary.failures).toEqual([]);
    expect(summary.ok).toBe(true);
    expect(summary.openai_version).toBe(version);

    // The Python client sends the form fields before the file part: the "fields first" upload path.
    expect(summary.form_field_order).toHaveLength(4);
    for (const order of summary.form_field_order) expect(order.at(-1)).toBe('file');
    expect(summary.form_field_order[0]).toEqual(['purpose', 'expires_after[anchor]', 'expires_after[seconds]', 'file']);
    expect(summary.form_field_order[3]).toEqual(['purpose', 'file']);

    expect(summary.created).toHaveLength(3);
    for (const [index, file] of summary.created.entries()) {
      expect(file).toMatchObject({
        id: expect.stringMatching(/^file_[a-z0-9]{26}$/),
        object: 'file',
        filename: `smoke-${index}.jsonl`,
        purpose: 'batch',
        status: 'processed',
        expires_at: file.created_at + 3600,
      });
    }
    const ids = summary.created.map((f) => f.id);
    // A fresh owner: the listing is exactly its three files, newest first, in pages of 2 (2 + 1).
    expect(summary.listed_ids).toEqual([...ids].reverse());
    expect(summary.list_requests).toBe(2);
    expect(summary.retrieved).toEqual(summary.created[0]);
    expect(summary.content.bytes).toBe(summary.created[0].bytes);
    expect(summary.content.sha256).toBe(summary.content.expected_sha256);
    expect(summary.deleted).toEqual(ids.map((id) => ({ id, object: 'file', deleted: true })));
    expect(summary.not_found).toMatchObject({ exception: 'NotFoundError', status_code: 404 });
    expect(summary.fine_tune).toMatchObject({
      exception: 'BadRequestError',
      status_code: 400,
      code: 'unsupported_purpose',
      param: 'purpose',
    });

    const residue = await residueOf(t);
    expect(residue).toMatchObject({ keys: [], openUploads: [], rows: [] });
    expect(residue.usage.python ?? 0).toBe(0);
  });
});
