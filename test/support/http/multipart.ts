import { randomBytes } from 'node:crypto';
import * as http from 'node:http';

/** A text field, or a file part (a part with a filename). */
export type FormPart =
  | { name: string; value: string | Buffer }
  | { name: string; filename: string; data: Buffer; contentType?: string; disposition?: string };

export interface MultipartBody {
  body: Buffer;
  contentType: string;
  boundary: string;
}

/**
 * Builds a multipart/form-data body byte by byte, parts in the given order, so tests control
 * exactly what the server parses (field order, raw Content-Disposition, truncation).
 * `disposition` replaces a file part's whole Content-Disposition value.
 */
export function multipart(parts: FormPart[], boundary = `----files-api-test-${randomBytes(8).toString('hex')}`): MultipartBody {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    let head = `--${boundary}\r\n`;
    if ('filename' in part) {
      head += `Content-Disposition: ${part.disposition ?? `form-data; name="${part.name}"; filename="${part.filename}"`}\r\n`;
      head += `Content-Type: ${part.contentType ?? 'application/octet-stream'}\r\n\r\n`;
      chunks.push(Buffer.from(head, 'utf8'), part.data, Buffer.from('\r\n'));
    } else {
      head += `Content-Disposition: form-data; name="${part.name}"\r\n\r\n`;
      chunks.push(Buffer.from(head, 'utf8'), Buffer.from(part.value), Buffer.from('\r\n'));
    }
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}`, boundary };
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The body parsed as JSON, or undefined if it is not JSON. */
  json: any;
}

export interface RawRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  /** Written one by one; with `chunked`, each becomes its own HTTP chunk. */
  chunks: Buffer[];
  /** No Content-Length: `Transfer-Encoding: chunked`. Otherwise Content-Length is the sum of chunks. */
  chunked?: boolean;
  /** Pause between chunks, so the server sees the body arrive in pieces. */
  delayMs?: number;
}

/** Sends a request with node:http, giving full control over framing (chunked, Content-Length). */
export function rawRequest(origin: string, options: RawRequest): Promise<RawResponse> {
  const url = new URL(options.path, origin);
  const headers: Record<string, string> = { ...options.headers };
  if (!options.chunked) headers['Content-Length'] = String(options.chunks.reduce((n, c) => n + c.length, 0));
  else headers['Transfer-Encoding'] = 'chunked';
  return new Promise<RawResponse>((resolve, reject) => {
    const req = http.request(url, { method: options.method, headers, agent: false }, (res) => {
      const body: Buffer[] = [];
      res.on('data', (c: Buffer) => body.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const buffer = Buffer.concat(body);
        let json: unknown;
        try {
          json = JSON.parse(buffer.toString('utf8'));
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buffer, json });
      });
    });
    req.on('error', reject);
    void (async () => {
      for (const chunk of options.chunks) {
        if (req.destroyed) return;
        req.write(chunk);
        if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
      }
      req.end();
    })();
  });
}

/**
 * Starts a request that announces `announcedBytes` but sends only `chunks`, then drops the
 * connection: a client going away mid-upload. Resolves once the socket is closed.
 */
export function abandonRequest(origin: string, path: string, headers: Record<string, string>, chunks: Buffer[], announcedBytes: number): Promise<void> {
  const url = new URL(path, origin);
  return new Promise<void>((resolve) => {
    const req = http.request(url, { method: 'POST', headers: { ...headers, 'Content-Length': String(announcedBytes) }, agent: false });
    req.on('error', () => resolve());
    req.on('close', () => resolve());
    req.on('response', (res) => res.resume());
    (async () => {
      for (const chunk of chunks) {
        req.write(chunk);
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 100));
      req.destroy();
    })();
  });
}

/**
 * Starts a POST whose body is sent in two steps: `head` now, the rest when `finish` is called,
 * so a test can hold a request open (an upload in progress) while it sends others.
 */
export function startRequest(
  origin: string,
  path: string,
  headers: Record<string, string>,
  body: Buffer,
  headBytes: number,
): { finish(): Promise<RawResponse> } {
  const url = new URL(path, origin);
  let settle!: (res: RawResponse) => void;
  let fail!: (error: Error) => void;
  const response = new Promise<RawResponse>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  const req = http.request(url, { method: 'POST', headers: { ...headers, 'Content-Length': String(body.length) }, agent: false }, (res) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => {
      const buffer = Buffer.concat(chunks);
      let json: unknown;
      try {
        json = JSON.parse(buffer.toString('utf8'));
      } catch {
        json = undefined;
      }
      settle({ status: res.statusCode ?? 0, headers: res.headers, body: buffer, json });
    });
  });
  req.on('error', fail);
  req.write(body.subarray(0, headBytes));
  return {
    finish: () => {
      req.end(body.subarray(headBytes));
      return response;
    },
  };
}
