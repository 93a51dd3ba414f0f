import OpenAI, { toFile } from 'openai';
import { startTestApp, type TestApp } from '../support/app';
import { MiB } from '../support/e2e/content';
import { E2E_KEYS, e2eApiKeysEnv, openaiFor } from '../support/e2e/owners';
import { startRawUpload } from '../support/e2e/raw-upload';
import { eventually, residueOf, type Residue } from '../support/e2e/residue';

// jest.config.js sets testTimeout per project, where Jest ignores it (it is a global option).
jest.setTimeout(60_000);

const nothingLeft = (r: Residue) =>
  r.keys.length === 0 && r.openUploads.length === 0 && r.rows.length === 0 && (r.usage.leaver ?? 0) === 0;

describe('a client that disconnects mid-upload (S3 storage)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({
      storage: 's3',
      // One upload at a time for this owner, so an upload slot the aborted request kept would show.
      env: { ...e2eApiKeysEnv(), FILES_MAX_CONCURRENT_UPLOADS_PER_OWNER: '1' },
    });
  });
  afterAll(async () => t?.close());

  it.each([
    {
      when: 'fields first, 3 MiB into the first S3 part',
      fieldsFirst: true,
      bytes: 3 * MiB,
      // The pending row proves the service had begun storing this upload.
      underway: (r: Residue) => r.rows.some((row) => row.owner_id === 'leaver' && row.state === 'pending'),
    },
    {
      when: 'file first, 10 MiB in, after a part reached S3',
      fieldsFirst: false,
      bytes: 10 * MiB,
      // An open multipart upload proves bytes already sit in the bucket, as an unfinished upload.
      underway: (r: Residue) => r.openUploads.length > 0,
    },
  ])('leaves no object, no open multipart upload and no row when the client goes away ($when)', async (scenario) => {
    const upload = startRawUpload(t, E2E_KEYS.leaver, { fieldsFirst: scenario.fieldsFirst });
    await upload.send(scenario.bytes);
    await eventually(() => residueOf(t), scenario.underway, 10_000);
    expect(upload.response).toBeUndefined();

    upload.abort();

    // Nobody is left to answer, so the clean-up runs on its own: give it a few seconds.
    const residue = await eventually(() => residueOf(t), nothingLeft, 8_000);
    expect(residue).toMatchObject({ keys: [], openUploads: [], rows: [] });

    // The owner's only upload slot came back: the next upload is accepted, not 429.
    const client = openaiFor(t, 'leaver');
    const next = await client.files.create({ file: await toFile(Buffer.from('{"ok":1}\n'), 'next.jsonl'), purpose: 'batch' });
    expect(next).toMatchObject({ object: 'file', bytes: 9 });
    await client.files.delete(next.id);
    await expect(client.files.retrieve(next.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });
});
