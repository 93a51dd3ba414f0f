import * as net from 'node:net';
import { startHarness, type Harness } from '../support/http/harness';
import { jsonlBytes } from '../support/http/api';
import { multipart, rawRequest, type FormPart } from '../support/http/multipart';
import { eventuallyNothingLeftBehind, expectNothingLeftBehind, residue, rowOf, walk } from '../support/http/residue';

/**
 * Malformed and hostile requests of every kind, each sent to the whole service (real pipes,
 * guards, filters, multer, PostgreSQL, fs storage). Every one must be answered with a 4xx in the
 * OpenAI error shape, the service must stay up, and nothing may be written: no row, no usage
 * change, no file in the storage directory (`.partial` included).
 */

const FILES = '/v1/files';
const OPENAI_FILES = '/v1/openai/files';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: any;
  raw: string;
}

interface Context {
  h: Harness;
  /** A live file of alice's (so malformed ids are tried next to a real one). */
  realId: string;
}

interface HostileCase {
  name: string;
  send: (c: Context) => Promise<Reply>;
  status: number;
  /** Expected `error.code`; `undefined` = not asserted. */
  code?: string | null;
  /** Expected `error.param`; `undefined` = not asserted. */
  param?: string | null;
  type?: string;
}

// ---------------------------------------------------------------------------------------------
// Ways to send

const auth = (c: Context) => c.h.alice.auth;

function toReply(res: { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer; json: any }): Reply {
  return { status: res.status, headers: res.headers, json: res.json, raw: res.body.toString('utf8') };
}

/** A request with exactly these headers and body (Content-Length from the body). */
async function send(c: Context, method: string, path: string, headers: Record<string, string>, body: Buffer | string = Buffer.alloc(0)): Promise<Reply> {
  const chunks = typeof body === 'string' ? [Buffer.from(body)] : [body];
  return toReply(await rawRequest(c.h.t.origin, { method, path, headers, chunks: chunks[0].length === 0 ? [] : chunks }));
}

/** A multipart upload as alice, built part by part. */
function form(parts: FormPart[], path = FILES) {
  return (c: Context) => {
    const { body, contentType } = multipart(parts);
    return send(c, 'POST', path, { Authorization: auth(c), 'Content-Type': contentType }, body);
  };
}

/** An upload as alice with a hand-made body under `Content-Type: contentType`. */
function rawForm(contentType: string | undefined, body: (boundary: string) => string | Buffer, boundary = 'hostile-boundary-1234') {
  return (c: Context) =>
    send(c, 'POST', FILES, { Authorization: auth(c), ...(contentType === undefined ? {} : { 'Content-Type': contentType.replace('{b}', boundary) }) }, body(boundary));
}

function get(path: (c: Context) => string, headers: (c: Context) => Record<string, string> = (c) => ({ Authorization: auth(c) })) {
  return (c: Context) => send(c, 'GET', path(c), headers(c));
}

function call(method: string, path: (c: Context) => string) {
  return (c: Context) => send(c, method, path(c), { Authorization: auth(c) });
}

/**
 * Writes raw bytes on a fresh TCP connection and reads one response (bounded in time), for
 * requests no HTTP client would send.
 */
function wire(bytes: (c: Context) => Buffer | string, timeoutMs = 5_000) {
  return (c: Context) =>
    new Promise<Reply>((resolve, reject) => {
      const { port } = new URL(c.h.t.origin);
      const socket = net.connect(Number(port), '127.0.0.1');
      let received = Buffer.alloc(0);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no complete response within ${timeoutMs} ms; got: ${JSON.stringify(received.toString('latin1').slice(0, 300))}`));
      }, timeoutMs);
      const tryParse = (final: boolean) => {
        const text = received.toString('latin1');
        const end = text.indexOf('\r\n\r\n');
        if (end < 0) {
          if (final) finish(new Error(`connection closed without a response: ${JSON.stringify(text.slice(0, 300))}`));
          return;
        }
        const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
        const headers: Record<string, string> = {};
        for (const line of lines) {
          const colon = line.indexOf(':');
          headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
        }
        const length = Number(headers['content-length'] ?? NaN);
        const body = received.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1'));
        if (Number.isFinite(length) ? body.length < length : !final) return;
        const raw = body.subarray(0, Number.isFinite(length) ? length : body.length).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(raw);
        } catch {
          json = undefined;
        }
        finish(undefined, { status: Number(statusLine.split(' ')[1]), headers, json, raw });
      };
      let settled = false;
      const finish = (error?: Error, reply?: Reply) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        if (error) reject(error);
        else resolve(reply!);
      };
      socket.on('data', (d: Buffer) => {
        received = Buffer.concat([received, d]);
        tryParse(false);
      });
      socket.on('end', () => tryParse(true));
      socket.on('close', () => tryParse(true));
      socket.on('error', (e) => finish(e));
      const payload = bytes(c);
      socket.write(typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload);
    });
}

// ---------------------------------------------------------------------------------------------
// Pieces of forms

const purpose = (value = 'batch'): FormPart => ({ name: 'purpose', value });
const field = (name: string, value: string): FormPart => ({ name, value });
const file = (name = 'file', filename = 'requests.jsonl'): FormPart => ({ name, filename, data: jsonlBytes(200) });
const MULTIPART = 'multipart/form-data; boundary={b}';
const part = (b: string, disposition: string, value: string) => `--${b}\r\nContent-Disposition: ${disposition}\r\n\r\n${value}\r\n`;
const filePart = (b: string, data = 'x'.repeat(300)) =>
  `--${b}\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\nContent-Type: application/octet-stream\r\n\r\n${data}\r\n`;
const close = (b: string) => `--${b}--\r\n`;

const upper = (id: string) => id.toUpperCase();

// ---------------------------------------------------------------------------------------------
// The table

const INVALID_MULTIPART = { status: 400, code: 'invalid_multipart' };
const INVALID = (param: string) => ({ status: 400, code: 'invalid_value', param });
const NOT_FOUND = { status: 404, code: null, param: 'id' };
const UNAUTHORIZED = { status: 401, code: 'invalid_api_key', param: null };
const NOT_ALLOWED = { status: 405, code: 'method_not_allowed', param: null };
const MALFORMED_HTTP = { status: 400, code: 'invalid_request', param: null };

const CASES: HostileCase[] = [
  // Broken multipart framing
  { name: 'multipart: body truncated inside the file part', send: rawForm(MULTIPART, (b) => part(b, 'form-data; name="purpose"', 'batch') + filePart(b).slice(0, 150)), ...INVALID_MULTIPART, param: null },
  { name: 'multipart: no final boundary', send: rawForm(MULTIPART, (b) => part(b, 'form-data; name="purpose"', 'batch') + filePart(b)), ...INVALID_MULTIPART, param: null },
  { name: 'multipart: boundary in the header differs from the body', send: (c) => rawForm('multipart/form-data; boundary=other-boundary', (b) => part(b, 'form-data; name="purpose"', 'batch') + filePart(b) + close(b))(c), ...INVALID_MULTIPART, param: null },
  { name: 'multipart: Content-Type without a boundary', send: rawForm('multipart/form-data', (b) => part(b, 'form-data; name="purpose"', 'batch') + filePart(b) + close(b)), ...INVALID_MULTIPART, param: null },
  // busboy takes an empty boundary as one that never matches: a form without parts, so no file (code not pinned).
  { name: 'multipart: empty boundary parameter', send: rawForm('multipart/form-data; boundary=', (b) => part(b, 'form-data; name="purpose"', 'batch') + filePart(b) + close(b)), status: 400 },
  { name: 'multipart: empty body', send: rawForm(MULTIPART, () => ''), ...INVALID_MULTIPART, param: null },
  { name: 'multipart: garbage only, no boundary anywhere', send: rawForm(MULTIPART, () => 'just some bytes\r\n\r\nthat are not a form'), ...INVALID_MULTIPART, param: null },
  // A delimiter line with trailing garbage is not a delimiter: what follows never becomes a file part (code not pinned).
  { name: 'multipart: garbage between parts (after a delimiter line)', send: rawForm(MULTIPART, (b) => part(b, 'form-data; name="purpose"', 'batch') + `--${b}GARBAGE\r\n\x00\x01\x02junk` + filePart(b) + close(b)), status: 400 },
  { name: 'multipart: part header without the blank line', send: rawForm(MULTIPART, (b) => `--${b}\r\nContent-Disposition: form-data; name="purpose"\r\nbatch\r\n` + close(b)), ...INVALID_MULTIPART, param: null },
  { name: 'multipart: part header line that never ends', send: rawForm(MULTIPART, (b) => `--${b}\r\nContent-Disposition: form-data; name="purpose"${'x'.repeat(100_000)}`), ...INVALID_MULTIPART, param: null },
  { name: 'multipart: only the closing boundary (no parts)', send: rawForm(MULTIPART, (b) => close(b)), status: 400, code: 'missing_required_parameter', param: 'file' },
  { name: 'multipart: parts without Content-Disposition', send: rawForm(MULTIPART, (b) => `--${b}\r\nContent-Type: text/plain\r\n\r\nbatch\r\n` + close(b)), status: 400, code: 'missing_required_parameter', param: 'file' },

  // Duplicate fields
  { name: 'purpose twice, before the file', send: form([purpose(), purpose(), file()]), ...INVALID('purpose') },
  { name: 'purpose twice, after the file', send: form([file(), purpose(), purpose('batch')]), ...INVALID('purpose') },
  { name: 'file part twice', send: form([purpose(), file(), file('file', 'second.jsonl')]), ...INVALID_MULTIPART, param: 'file' },
  { name: 'expires_after (JSON form) twice', send: form([purpose(), field('expires_after', '{"anchor":"created_at","seconds":3600}'), field('expires_after', '{"anchor":"created_at","seconds":3600}'), file()]), ...INVALID('expires_after') },
  { name: 'expires_after[seconds] twice', send: form([purpose(), field('expires_after[seconds]', '3600'), field('expires_after[seconds]', '7200'), file()]), ...INVALID('expires_after.seconds') },
  { name: 'expires_after[anchor] twice', send: form([purpose(), field('expires_after[anchor]', 'created_at'), field('expires_after[anchor]', 'created_at'), file()]), ...INVALID('expires_after.anchor') },
  { name: 'expires_after in both forms (JSON and bracketed)', send: form([purpose(), field('expires_after', '{"anchor":"created_at","seconds":3600}'), field('expires_after[seconds]', '3600'), file()]), ...INVALID('expires_after') },

  // Oversized and too many
  { name: 'purpose value over 16 KiB', send: form([purpose('b'.repeat(17 * 1024)), file()]), ...INVALID('purpose') },
  { name: 'expires_after JSON value over 16 KiB', send: form([purpose(), field('expires_after', `{"anchor":"created_at","seconds":3600,"pad":"${'p'.repeat(17 * 1024)}"}`), file()]), ...INVALID('expires_after') },
  { name: 'too many fields (9 text fields)', send: form([...Array.from({ length: 9 }, () => purpose()), file()]), ...INVALID_MULTIPART, param: null },
  { name: 'too many parts (11 parts without names)', send: rawForm(MULTIPART, (b) => `--${b}\r\nContent-Type: text/plain\r\n\r\nx\r\n`.repeat(11) + close(b)), ...INVALID_MULTIPART, param: null },
  { name: 'field name of 101 characters', send: form([purpose(), field('f'.repeat(101), 'x'), file()]), ...INVALID_MULTIPART, param: null },
  { name: 'field name of 64 KiB', send: form([purpose(), field('f'.repeat(64 * 1024), 'x'), file()]), ...INVALID_MULTIPART, param: null },
  { name: 'file part with a field name of 101 characters', send: form([purpose(), file('f'.repeat(101))]), ...INVALID_MULTIPART, param: null },

  // Field names that build structures
  { name: 'nested field name expires_after[a][b]', send: form([purpose(), field('expires_after[a][b]', '1'), file()]), ...INVALID_MULTIPART, param: 'expires_after[a][b]' },
  { name: 'array index expires_after[0]', send: form([purpose(), field('expires_after[0]', '3600'), file()]), ...INVALID('expires_after') },
  { name: 'large array index expires_after[99999999]', send: form([purpose(), field('expires_after[99999999]', '3600'), file()]), ...INVALID_MULTIPART, param: 'expires_after[99999999]' },
  { name: 'array field purpose[]', send: form([field('purpose[]', 'batch'), file()]), ...INVALID('purpose') },
  { name: 'prototype pollution __proto__[polluted]', send: form([purpose(), field('__proto__[polluted]', 'yes'), file()]), ...INVALID('__proto__') },
  { name: 'prototype pollution constructor[prototype][polluted]', send: form([purpose(), field('constructor[prototype][polluted]', 'yes'), file()]), ...INVALID_MULTIPART },

  // The file part itself
  // A text field is not a file: the form has no file part.
  { name: '`file` sent as a text field', send: form([purpose(), field('file', '{"custom_id":"x"}')]), status: 400, code: 'missing_required_parameter', param: 'file' },
  { name: 'file part without a filename', send: rawForm(MULTIPART, (b) => part(b, 'form-data; name="purpose"', 'batch') + `--${b}\r\nContent-Disposition: form-data; name="file"\r\nContent-Type: application/octet-stream\r\n\r\n{"a":1}\r\n` + close(b)), status: 400, code: 'missing_required_parameter', param: 'file' },
  { name: 'file part with an empty filename', send: rawForm(MULTIPART, (b) => part(b, 'form-data; name="purpose"', 'batch') + `--${b}\r\nContent-Disposition: form-data; name="file"; filename=""\r\n\r\n{"a":1}\r\n` + close(b)), status: 400, code: 'missing_required_parameter', param: 'file' },
  { name: 'file part under another field name', send: form([purpose(), file('document')]), ...INVALID_MULTIPART, param: 'document' },
  { name: 'an unknown text field', send: form([purpose(), field('model', 'gpt-4o'), file()]), ...INVALID('model') },

  // Not multipart
  { name: 'Content-Type application/json', send: rawForm('application/json', () => JSON.stringify({ purpose: 'batch', file: 'eyJ9' })), ...INVALID_MULTIPART, param: null },
  { name: 'Content-Type application/json with malformed JSON', send: rawForm('application/json', () => '{"purpose": bat'), ...INVALID_MULTIPART, param: null },
  { name: 'Content-Type application/json, 1 MiB body', send: rawForm('application/json', () => JSON.stringify({ purpose: 'x'.repeat(1024 * 1024) })), ...INVALID_MULTIPART, param: null },
  { name: 'Content-Type application/x-www-form-urlencoded', send: rawForm('application/x-www-form-urlencoded', () => 'purpose=batch&file=abc'), ...INVALID_MULTIPART, param: null },
  { name: 'Content-Type text/plain', send: rawForm('text/plain', () => 'purpose=batch'), ...INVALID_MULTIPART, param: null },
  { name: 'no Content-Type', send: rawForm(undefined, () => 'purpose=batch'), ...INVALID_MULTIPART, param: null },
  { name: 'Content-Type multipart/mixed', send: rawForm('multipart/mixed; boundary={b}', (b) => part(b, 'form-data; name="purpose"', 'batch') + filePart(b) + close(b)), ...INVALID_MULTIPART, param: null },

  // Bad ids
  { name: 'id: encoded path traversal ..%2F..%2Fetc%2Fpasswd', send: get(() => `${FILES}/..%2F..%2Fetc%2Fpasswd`), ...NOT_FOUND },
  { name: 'id: encoded path traversal on /content', send: get(() => `${FILES}/..%2F..%2Fetc%2Fpasswd/content`), ...NOT_FOUND },
  { name: 'id: encoded path traversal on DELETE', send: call('DELETE', () => `${FILES}/..%2F..%2F..%2Fdata`), ...NOT_FOUND },
  { name: "id: SQL-ish ' OR 1=1--", send: get(() => `${FILES}/${encodeURIComponent("' OR 1=1--")}`), ...NOT_FOUND },
  { name: "id: SQL-ish on DELETE '; DELETE FROM files;--", send: call('DELETE', () => `${FILES}/${encodeURIComponent("'; DELETE FROM files;--")}`), ...NOT_FOUND },
  { name: 'id: unicode', send: get(() => `${FILES}/${encodeURIComponent('file_ｆｉｌｅ😀ü')}`), ...NOT_FOUND },
  { name: 'id: 10 KB long', send: get(() => `${FILES}/file_${'a'.repeat(10_000)}`), ...NOT_FOUND },
  { name: 'id: uppercase variant of a real id', send: get((c) => `${FILES}/${upper(c.realId)}`), ...NOT_FOUND },
  { name: 'id: uppercase variant of a real id on DELETE', send: call('DELETE', (c) => `${FILES}/${upper(c.realId)}`), ...NOT_FOUND },
  { name: 'id: file- prefix instead of file_', send: get((c) => `${FILES}/${c.realId.replace('file_', 'file-')}`), ...NOT_FOUND },
  { name: 'id: real id with a NUL appended', send: get((c) => `${FILES}/${c.realId}%00`), ...NOT_FOUND },
  { name: 'id: real id with trailing garbage on /content', send: get((c) => `${FILES}/${c.realId}x/content`), ...NOT_FOUND },
  { name: 'id: malformed percent-encoding', send: get(() => `${FILES}/file_%E0%A4%A`), status: 400, code: null, param: null },

  // Bad query values
  ...['-1', '0', '1e3', '10001', 'abc'].map((limit): HostileCase => ({ name: `query: limit=${limit}`, send: get(() => `${FILES}?limit=${encodeURIComponent(limit)}`), ...INVALID('limit') })),
  { name: 'query: limit repeated', send: get(() => `${FILES}?limit=1&limit=2`), ...INVALID('limit') },
  { name: 'query: order=xyz', send: get(() => `${FILES}?order=xyz`), ...INVALID('order') },
  { name: 'query: order repeated', send: get(() => `${FILES}?order=asc&order=desc`), ...INVALID('order') },
  { name: 'query: after=garbage', send: get(() => `${OPENAI_FILES}?after=${encodeURIComponent("garbage' OR 1=1")}`), ...INVALID('after') },
  { name: 'query: after=uppercase variant of a real id', send: get((c) => `${FILES}?after=${upper(c.realId)}`), ...INVALID('after') },
  { name: 'query: purpose=unknown', send: get(() => `${FILES}?purpose=unknown`), ...INVALID('purpose') },

  // Wrong methods
  { name: 'method: PUT /files', send: call('PUT', () => FILES), ...NOT_ALLOWED },
  { name: 'method: PATCH /files', send: call('PATCH', () => OPENAI_FILES), ...NOT_ALLOWED },
  { name: 'method: DELETE /files', send: call('DELETE', () => FILES), ...NOT_ALLOWED },
  { name: 'method: POST /files/{id}', send: call('POST', (c) => `${FILES}/${c.realId}`), ...NOT_ALLOWED },
  { name: 'method: PUT /files/{id}/content', send: call('PUT', (c) => `${FILES}/${c.realId}/content`), ...NOT_ALLOWED },

  // Broken HTTP (answered by the server before Express)
  { name: 'http: request headers over 16 KiB', send: wire((c) => `GET ${FILES} HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth(c)}\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`), status: 431, code: 'invalid_request', param: null },
  { name: 'http: many headers totalling over 16 KiB', send: wire(() => `GET ${FILES} HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'v'.repeat(40)}\r\n`).join('')}\r\n`), status: 431, code: 'invalid_request', param: null },
  { name: 'http: malformed request line', send: wire(() => 'THIS IS NOT HTTP\r\n\r\n'), ...MALFORMED_HTTP },
  { name: 'http: unknown HTTP version', send: wire(() => `GET ${FILES} HTTP/9.9\r\nHost: x\r\n\r\n`), ...MALFORMED_HTTP },
  { name: 'http: space inside a header name', send: wire((c) => `GET ${FILES} HTTP/1.1\r\nHost: x\r\nBad Header: y\r\nAuthorization: ${auth(c)}\r\n\r\n`), ...MALFORMED_HTTP },
  { name: 'http: Content-Length and Transfer-Encoding together (smuggling)', send: wire((c) => `POST ${FILES} HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth(c)}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`), ...MALFORMED_HTTP },
  { name: 'http: two different Content-Length headers', send: wire((c) => `POST ${FILES} HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth(c)}\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd`), ...MALFORMED_HTTP },

  // Credentials
  { name: 'auth: no Authorization header (upload)', send: (c) => send(c, 'POST', FILES, { 'Content-Type': multipart([purpose(), file()]).contentType }, multipart([purpose(), file()]).body), ...UNAUTHORIZED },
  { name: 'auth: no Authorization header (list)', send: get(() => FILES, () => ({})), ...UNAUTHORIZED },
  { name: 'auth: no Authorization header, malformed JSON body (auth is checked first)', send: (c) => send(c, 'POST', FILES, { 'Content-Type': 'application/json' }, Buffer.from('{bad')), ...UNAUTHORIZED },
  { name: 'auth: Basic credentials', send: get(() => FILES, () => ({ Authorization: `Basic ${Buffer.from('alice:secret').toString('base64')}` })), ...UNAUTHORIZED },
  { name: 'auth: Bearer without a token', send: get(() => FILES, () => ({ Authorization: 'Bearer' })), ...UNAUTHORIZED },
  { name: 'auth: Bearer with only spaces', send: get(() => FILES, () => ({ Authorization: 'Bearer    ' })), ...UNAUTHORIZED },
  { name: 'auth: a real key with trailing garbage', send: get(() => FILES, (c) => ({ Authorization: `${c.h.alice.auth}garbage` })), ...UNAUTHORIZED },
  { name: 'auth: a real key followed by a second token', send: get(() => FILES, (c) => ({ Authorization: `${c.h.alice.auth} ${c.h.bob.key}` })), ...UNAUTHORIZED },
  { name: "auth: another service's key", send: get(() => FILES, () => ({ Authorization: `Bearer sk-proj-${'Z'.repeat(48)}` })), ...UNAUTHORIZED },
  { name: 'auth: a real key in another case', send: get(() => FILES, (c) => ({ Authorization: `Bearer ${c.h.alice.key.toUpperCase()}` })), ...UNAUTHORIZED },
  { name: 'auth: a key of 2000 characters (upload)', send: (c) => send(c, 'POST', FILES, { Authorization: `Bearer ${'k'.repeat(2000)}`, 'Content-Type': multipart([purpose(), file()]).contentType }, multipart([purpose(), file()]).body), ...UNAUTHORIZED },
];

/**
 * Filenames that are accepted, but only in a sanitized form (`refused`: answered with this 4xx
 * instead). `disposition` is the file part's Content-Disposition value, sent byte for byte.
 */
const FILENAMES: { name: string; disposition: Buffer; stored?: string; refused?: { status: number; code: string; param: string } }[] = [
  { name: 'path traversal ../../etc/passwd', disposition: Buffer.from('form-data; name="file"; filename="../../../etc/passwd"'), stored: 'passwd' },
  { name: 'Windows path traversal', disposition: Buffer.from('form-data; name="file"; filename="..\\..\\..\\Windows\\system32\\evil.bat"'), stored: 'evil.bat' },
  // busboy reduces ".." to an empty filename, and a part without a filename is no file.
  { name: 'only dots', disposition: Buffer.from('form-data; name="file"; filename=".."'), refused: { status: 400, code: 'missing_required_parameter', param: 'file' } },
  { name: 'CR LF header injection (escaped)', disposition: Buffer.from('form-data; name="file"; filename="a%0D%0ASet-Cookie: x=1%0D%0A.jsonl"'), stored: 'aSet-Cookie: x=1.jsonl' },
  { name: 'CR LF header injection (RFC 5987)', disposition: Buffer.from("form-data; name=\"file\"; filename*=UTF-8''a%0D%0AX-Injected%3A%201.jsonl"), stored: 'aX-Injected: 1.jsonl' },
  { name: 'NUL byte (RFC 5987)', disposition: Buffer.from("form-data; name=\"file\"; filename*=UTF-8''a%00b.jsonl"), stored: 'ab.jsonl' },
  { name: 'right-to-left override', disposition: Buffer.from('form-data; name="file"; filename="invoice\u202Egpj.exe"'), stored: 'invoicegpj.exe' },
  { name: 'very long (5000 characters)', disposition: Buffer.from(`form-data; name="file"; filename="${'n'.repeat(5000)}.jsonl"`), stored: `${'n'.repeat(249)}.jsonl` },
  { name: 'non-UTF-8 bytes (Latin-1 0xE9, 0xFF 0xFE)', disposition: Buffer.from('form-data; name="file"; filename="caf\xe9-\xff\xfe.jsonl"', 'latin1'), stored: 'caf\uFFFD-\uFFFD\uFFFD.jsonl' },
  { name: 'quotes and a semicolon', disposition: Buffer.from('form-data; name="file"; filename="a%22; filename=%22evil.sh"'), stored: 'a"; filename="evil.sh' },
];

// ---------------------------------------------------------------------------------------------

describe('hostile and malformed requests', () => {
  let h: Harness;
  let c: Context;
  beforeAll(async () => {
    h = await startHarness({ storage: 'fs' });
    const { body, contentType } = multipart([purpose(), file('file', 'real.jsonl')]);
    const created = await rawRequest(h.t.origin, { method: 'POST', path: FILES, headers: { Authorization: h.alice.auth, 'Content-Type': contentType }, chunks: [body] });
    expect(created.status).toBe(200);
    c = { h, realId: created.json.id };
  });
  afterAll(async () => h?.close());

  async function expectAlive(): Promise<void> {
    const res = await rawRequest(h.t.origin, { method: 'GET', path: '/healthz', headers: {}, chunks: [] });
    expect(res.status).toBe(200);
  }

  it(`has at least 50 refused cases (${CASES.length})`, () => {
    expect(CASES.length).toBeGreaterThanOrEqual(50);
    expect(new Set(CASES.map((k) => k.name)).size).toBe(CASES.length);
  });

  it.each(CASES)('refuses $name with $status and writes nothing', async (k) => {
    const before = await residue(h);
    expect(before.objects).toEqual([`files/${c.realId}`]);
    const reply = await k.send(c);
    expect({ status: reply.status, raw: reply.json === undefined ? reply.raw : undefined }).toEqual({ status: k.status, raw: undefined });
    const error = reply.json?.error ?? {};
    expect(reply.json).toEqual({
      error: {
        message: expect.any(String),
        type: k.type ?? 'invalid_request_error',
        // Not pinned where several answers are right; still a string or null, as the shape requires.
        param: k.param === undefined && (error.param === null || typeof error.param === 'string') ? error.param : k.param,
        code: k.code === undefined && (error.code === null || typeof error.code === 'string') ? error.code : k.code,
      },
    });
    expect(String(reply.headers['content-type'])).toMatch(/^application\/json/);
    expect(reply.json.error.message.length).toBeGreaterThan(0);
    await expectAlive();
    await expectNothingLeftBehind(h, before);
    expect(await walk(`${h.t.fsDir}/.partial`)).toEqual([]);
  });

  describe('hostile filenames (accepted only sanitized)', () => {
    const outcomes = FILENAMES.map((f) => ({
      ...f,
      outcome: f.refused ? `refused with ${f.refused.status} ${f.refused.code}` : `stored as ${JSON.stringify(f.stored!.length > 40 ? `${f.stored!.slice(0, 12)}…${f.stored!.slice(-12)}` : f.stored)}`,
    }));
    it.each(outcomes)('takes the filename $name only safely: $outcome', async ({ disposition, stored: expected, refused }) => {
      const before = await residue(h);
      const owner = h.owner();
      const b = 'hostile-filename';
      const body = Buffer.concat([
        Buffer.from(part(b, 'form-data; name="purpose"', 'batch')),
        Buffer.from(`--${b}\r\nContent-Disposition: `),
        disposition,
        Buffer.from(`\r\nContent-Type: application/octet-stream\r\n\r\n${'{"a":1}\n'.repeat(5)}\r\n${close(b)}`),
      ]);
      const res = await rawRequest(h.t.origin, {
        method: 'POST',
        path: FILES,
        headers: { Authorization: owner.auth, 'Content-Type': `multipart/form-data; boundary=${b}` },
        chunks: [body],
      });
      await expectAlive();
      if (refused) {
        expect({ status: res.status, code: res.json?.error?.code, param: res.json?.error?.param }).toEqual(refused);
        await expectNothingLeftBehind(h, before);
        return;
      }
      expect(res.status).toBe(200);
      const stored = (await rowOf(h, res.json.id))!.filename;
      expect(stored).toBe(expected);
      for (const name of [res.json.filename, stored]) {
        expect(name).toBe(stored);
        expect(name).not.toMatch(/[/\\\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
        expect(name).not.toMatch(/^\.\.?$/);
        expect(Buffer.byteLength(name)).toBeLessThanOrEqual(255);
        expect(name.isWellFormed()).toBe(true);
      }
      // Stored under its id, never under the client's name.
      expect((await residue(h)).objects).toEqual([...before.objects, `files/${res.json.id}`].sort());
      const download = await rawRequest(h.t.origin, { method: 'GET', path: `${FILES}/${res.json.id}/content`, headers: { Authorization: owner.auth }, chunks: [] });
      expect(download.status).toBe(200);
      expect(download.headers['set-cookie']).toBeUndefined();
      expect(download.headers['x-injected']).toBeUndefined();
      expect(String(download.headers['content-disposition'])).toMatch(/^attachment; filename="[\x20-\x21\x23-\x5b\x5d-\x7e]*"; filename\*=UTF-8''[A-Za-z0-9%!._~$&+,;=:@-]*$/);
      expect(decodeURIComponent(String(download.headers['content-disposition']).split("filename*=UTF-8''")[1])).toBe(stored);
      const deleted = await rawRequest(h.t.origin, { method: 'DELETE', path: `${FILES}/${res.json.id}`, headers: { Authorization: owner.auth }, chunks: [] });
      expect(deleted.status).toBe(200);
      // Back to where it was; the owner's usage row now exists, at 0.
      const after = await residue(h);
      expect({ ...after, usage: after.usage.filter((u) => u.owner_id !== owner.name) }).toEqual(before);
      expect(after.usage.find((u) => u.owner_id === owner.name)?.used_bytes).toBe('0');
    });
  });

  describe('a Content-Length larger than the body sent', () => {
    /** Sends an upload's headers announcing `announced` bytes but only `body`, then `then`; resolves when the server ends the connection. */
    function short(announced: number, then: 'half-close' | 'idle', timeoutMs: number) {
      return new Promise<{ ms: number; response: string; closed: boolean }>((resolve) => {
        const { port } = new URL(h.t.origin);
        const socket = net.connect(Number(port), '127.0.0.1');
        const boundary = 'short-body';
        const body = part(boundary, 'form-data; name="purpose"', 'batch') + filePart(boundary, 'y'.repeat(5000));
        const started = Date.now();
        let response = '';
        const timer = setTimeout(() => {
          socket.destroy();
          resolve({ ms: Date.now() - started, response, closed: false });
        }, timeoutMs);
        socket.on('data', (d) => (response += d.toString('latin1')));
        socket.on('error', () => undefined);
        socket.on('close', () => {
          clearTimeout(timer);
          resolve({ ms: Date.now() - started, response, closed: true });
        });
        socket.write(
          `POST ${FILES} HTTP/1.1\r\nHost: x\r\nAuthorization: ${h.alice.auth}\r\n` +
            `Content-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${announced}\r\n\r\n${body}`,
        );
        if (then === 'half-close') setTimeout(() => socket.end(), 100);
      });
    }

    it('closes the connection promptly when the client stops sending and half-closes, and keeps nothing', async () => {
      const before = await residue(h);
      const result = await short(1_000_000, 'half-close', 10_000);
      expect(result.closed).toBe(true);
      expect(result.ms).toBeLessThan(5_000);
      // Whatever the server managed to say, it is never a success.
      expect(result.response).not.toMatch(/^HTTP\/1\.1 2/);
      await expectAlive();
      await eventuallyNothingLeftBehind(h, before);
    });

    it('closes a connection that goes silent mid-body after the server idle timeout, and keeps nothing', async () => {
      const server = h.t.app.getHttpServer();
      // The service bounds idle sockets (configureServer); its 120 s is shortened here to keep the test fast.
      expect(server.timeout).toBe(120_000);
      server.setTimeout(1_500);
      try {
        const before = await residue(h);
        const result = await short(1_000_000, 'idle', 10_000);
        expect(result.closed).toBe(true);
        expect(result.ms).toBeLessThan(5_000);
        expect(result.response).not.toMatch(/^HTTP\/1\.1 2/);
        await expectAlive();
        await eventuallyNothingLeftBehind(h, before);
      } finally {
        server.setTimeout(120_000);
      }
    });
  });
});
