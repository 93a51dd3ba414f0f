import { randomBytes } from 'node:crypto';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import type { TestApp } from '../app';

export interface RawUpload {
  /** Sends `bytes` more random file bytes, waiting whenever the socket pushes back. */
  send(bytes: number): Promise<void>;
  /** Bytes of file content sent so far. */
  readonly sent: number;
  /** The response, if the server has answered already. */
  readonly response: IncomingMessage | undefined;
  /** Cuts the connection mid-body, as a crashing or cancelled client does. */
  abort(): void;
}

/**
 * A `POST /v1/files` the test writes by hand: chunked (no Content-Length), the multipart head
 * sent at once, then file bytes as the test chooses, and never a closing boundary unless asked.
 */
export function startRawUpload(
  t: TestApp,
  apiKey: string,
  options: { fieldsFirst: boolean; filename?: string },
): RawUpload {
  const boundary = `e2e-${randomBytes(8).toString('hex')}`;
  const req: ClientRequest = request(`${t.origin}/v1/files`, {
    method: 'POST',
    agent: false,
    headers: {
      authorization: `Bearer ${apiKey}`,
      'content-type': `multipart/form-data; boundary=${boundary}`,
      'transfer-encoding': 'chunked',
    },
  });
  // A cut connection errors the request; that is the point here, not a failure.
  req.on('error', () => undefined);
  let response: IncomingMessage | undefined;
  req.on('response', (res) => {
    response = res;
    res.resume();
  });

  const purpose = `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n`;
  const fileHead =
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${options.filename ?? 'gone.jsonl'}"\r\n` +
    'Content-Type: application/octet-stream\r\n\r\n';
  req.write(options.fieldsFirst ? purpose + fileHead : fileHead);

  let sent = 0;
  const chunk = randomBytes(256 * 1024);
  return {
    async send(bytes) {
      for (let left = bytes; left > 0; ) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= piece.length;
        sent += piece.length;
        if (!req.write(piece)) await new Promise<void>((resolve) => req.once('drain', () => resolve()));
      }
    },
    get sent() {
      return sent;
    },
    get response() {
      return response;
    },
    abort: () => req.destroy(),
  };
}
