import request, { type Response } from 'supertest';
import type { Harness, TestOwner } from './harness';
import { multipart, type FormPart } from './multipart';

import type { FileList, FileObject } from '../../../src/files/file.mapper';

export type { FileList, FileObject };

/** `n` bytes of JSONL-looking content, different for each `seed`. */
export function jsonlBytes(n: number, seed = 0): Buffer {
  const line = Buffer.from(`{"custom_id":"req-${seed}","method":"POST","url":"/v1/chat/completions"}\n`);
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = line[i % line.length];
  return out;
}

/** Every byte value, several times: content that is not valid UTF-8. */
export function binaryBytes(n = 1024): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 255) % 256));
}

export interface UploadOptions {
  data?: Buffer;
  filename?: string;
  purpose?: string;
  /** Sent as `expires_after[anchor]=created_at` and `expires_after[seconds]`. */
  seconds?: number;
  /** Extra parts before the file part. */
  before?: FormPart[];
  /** Extra parts after the file part. */
  after?: FormPart[];
}

/** The form of a normal upload: purpose (and expiry) before the file, as the openai SDKs send it. */
export function uploadForm(options: UploadOptions = {}): FormPart[] {
  const fields: FormPart[] = [];
  if (options.purpose !== undefined) fields.push({ name: 'purpose', value: options.purpose });
  if (options.seconds !== undefined) {
    fields.push({ name: 'expires_after[anchor]', value: 'created_at' }, { name: 'expires_after[seconds]', value: String(options.seconds) });
  }
  return [
    ...fields,
    ...(options.before ?? []),
    { name: 'file', filename: options.filename ?? 'requests.jsonl', data: options.data ?? jsonlBytes(100) },
    ...(options.after ?? []),
  ];
}

/** A raw HTTP client for the Files API under one base path, as one owner. */
export class FilesClient {
  constructor(
    private readonly origin: string,
    readonly base: string,
  ) {}

  /** POSTs a multipart body built from `parts` exactly as given. */
  postForm(owner: TestOwner | null, parts: FormPart[]): Promise<Response> {
    const { body, contentType } = multipart(parts);
    return this.auth(request(this.origin).post(this.base), owner).set('Content-Type', contentType).send(body);
  }

  upload(owner: TestOwner, options: UploadOptions = {}): Promise<Response> {
    return this.postForm(owner, uploadForm({ purpose: 'batch', ...options }));
  }

  /** Uploads and insists on success: a factory for files other tests need. */
  async create(owner: TestOwner, options: UploadOptions = {}): Promise<FileObject> {
    const res = await this.upload(owner, options);
    if (res.status !== 200) throw new Error(`upload failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body as FileObject;
  }

  list(owner: TestOwner | null, query: Record<string, string | number> | string = {}): Promise<Response> {
    return this.auth(request(this.origin).get(this.base), owner).query(query);
  }

  retrieve(owner: TestOwner | null, id: string): Promise<Response> {
    return this.auth(request(this.origin).get(`${this.base}/${encodeURIComponent(id)}`), owner);
  }

  /** The content: the body as a Buffer (whatever its bytes), or parsed when it is a JSON error. */
  content(owner: TestOwner | null, id: string, headers: Record<string, string> = {}): Promise<Response> {
    return this.auth(request(this.origin).get(`${this.base}/${encodeURIComponent(id)}/content`), owner)
      .set(headers)
      .buffer(true)
      .parse((res, done) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          const json = /^application\/json/.test(String(res.headers['content-type']));
          done(null, json ? JSON.parse(body.toString('utf8')) : body);
        });
      });
  }

  delete(owner: TestOwner | null, id: string): Promise<Response> {
    return this.auth(request(this.origin).delete(`${this.base}/${encodeURIComponent(id)}`), owner);
  }

  /** Follows `after` cursors to the end and returns every id, in order. */
  async listAllIds(owner: TestOwner, query: Record<string, string | number>): Promise<string[]> {
    const ids: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 100; page++) {
      const res = await this.list(owner, after === undefined ? query : { ...query, after });
      if (res.status !== 200) throw new Error(`list failed: ${res.status} ${JSON.stringify(res.body)}`);
      const body = res.body as FileList;
      ids.push(...body.data.map((f) => f.id));
      if (!body.has_more) return ids;
      after = body.last_id!;
    }
    throw new Error('pagination did not end');
  }

  private auth<T extends request.Test>(req: T, owner: TestOwner | null): T {
    return owner ? (req.set('Authorization', owner.auth) as T) : req;
  }
}

export function clientFor(h: Harness, base: string): FilesClient {
  return new FilesClient(h.t.origin, base);
}

/** Asserts an OpenAI-shaped error: exact status, type, param and code, and a message. */
export function expectOpenAiError(
  res: { status: number; body: unknown; headers: Record<string, string | string[] | undefined> },
  status: number,
  expected: { code: string | null; param: string | null; type?: string; message?: RegExp | string },
): void {
  expect({ status: res.status, body: res.body }).toEqual({
    status,
    body: {
      error: {
        message: expect.any(String),
        type: expected.type ?? 'invalid_request_error',
        param: expected.param,
        code: expected.code,
      },
    },
  });
  expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
  const message = (res.body as { error: { message: string } }).error.message;
  expect(message.length).toBeGreaterThan(0);
  if (expected.message !== undefined) expect(message).toMatch(expected.message);
}
