'use strict';
// The benchmark's HTTP client for the service: uploads streamed like the openai Node client sends
// them (multipart/form-data, file part first, chunked, no Content-Length), downloads counted as
// they arrive, over keep-alive connections. Data comes from one random block reused, so producing
// it costs the client next to nothing.
const { createHash, randomBytes } = require('node:crypto');
const http = require('node:http');
const { Readable } = require('node:stream');
const { MiB } = require('./backends');

const BLOCK = randomBytes(8 * MiB);
const CHUNK = 256 * 1024;
const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });

/** The benchmark payload of `size` bytes, as chunks (views of one random block, no copies). */
function* payloadChunks(size) {
  let offset = 0;
  for (let sent = 0; sent < size; ) {
    const n = Math.min(CHUNK, size - sent, BLOCK.length - offset);
    yield BLOCK.subarray(offset, offset + n);
    sent += n;
    offset = (offset + n) % BLOCK.length;
  }
}

function payloadStream(size) {
  return Readable.from(payloadChunks(size), { objectMode: false, highWaterMark: CHUNK });
}

const digests = new Map();
/** Hex SHA-256 of the payload of `size` bytes (what the service's ETag must be); computed once. */
function payloadSha256(size) {
  if (!digests.has(size)) {
    const hash = createHash('sha256');
    for (const chunk of payloadChunks(size)) hash.update(chunk);
    digests.set(size, hash.digest('hex'));
  }
  return digests.get(size);
}

/** POST /v1/files with `size` payload bytes, streamed and chunked; resolves with the FileObject. */
function uploadFile(service, size, { filename = 'bench.jsonl' } = {}) {
  const boundary = `----bench${randomBytes(8).toString('hex')}`;
  return new Promise((resolve, reject) => {
    const req = http.request({
      agent,
      host: '127.0.0.1',
      port: service.port,
      method: 'POST',
      path: '/v1/files',
      headers: {
        Authorization: `Bearer ${service.apiKey}`,
        'Content-Type': `multipart/form-data; boundary=${boundary}`,
        'Transfer-Encoding': 'chunked',
      },
    });
    req.on('response', (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => {
        const body = Buffer.concat(parts).toString();
        if (res.statusCode !== 200) return reject(new Error(`upload answered ${res.statusCode}: ${body}`));
        const file = JSON.parse(body);
        if (file.bytes !== size) return reject(new Error(`upload stored ${file.bytes} bytes, sent ${size}`));
        resolve(file);
      });
    });
    req.on('error', reject);
    req.write(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n',
    );
    const chunks = payloadChunks(size);
    const pump = () => {
      for (;;) {
        const next = chunks.next();
        if (next.done) {
          req.end(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--${boundary}--\r\n`);
          return;
        }
        if (!req.write(next.value)) return req.once('drain', pump);
      }
    };
    pump();
  });
}

/** GET /v1/files/{id}/content, counting the bytes; resolves with { bytes, etag }. */
function downloadFile(service, id) {
  return new Promise((resolve, reject) => {
    http
      .get(
        { agent, host: '127.0.0.1', port: service.port, path: `/v1/files/${id}/content`, headers: { Authorization: `Bearer ${service.apiKey}` } },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            return reject(new Error(`download answered ${res.statusCode}`));
          }
          let bytes = 0;
          res.on('data', (c) => (bytes += c.length));
          res.on('end', () => resolve({ bytes, etag: res.headers.etag }));
          res.on('error', reject);
        },
      )
      .on('error', reject);
  });
}

/** A small JSON request; resolves with { status, body }. */
function request(service, method, urlPath, { auth = true } = {}) {
  return new Promise((resolve, reject) => {
    http
      .request(
        {
          agent,
          host: '127.0.0.1',
          port: service.port,
          method,
          path: urlPath,
          headers: auth ? { Authorization: `Bearer ${service.apiKey}` } : {},
        },
        (res) => {
          const parts = [];
          res.on('data', (c) => parts.push(c));
          res.on('end', () => {
            const text = Buffer.concat(parts).toString();
            let body = text;
            try {
              body = JSON.parse(text);
            } catch {
              // not JSON
            }
            resolve({ status: res.statusCode, body });
          });
        },
      )
      .on('error', reject)
      .end();
  });
}

async function deleteFile(service, id) {
  const res = await request(service, 'DELETE', `/v1/files/${id}`);
  if (res.status !== 200) throw new Error(`delete of ${id} answered ${res.status}`);
}

/** A complete multipart body for one small upload with a known Content-Length (for load tools). */
function smallUploadBody(size) {
  const boundary = '----benchsmall0123456789';
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="small.jsonl"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    BLOCK.subarray(0, size),
    Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--${boundary}--\r\n`),
  ]);
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

module.exports = { BLOCK, payloadChunks, payloadStream, payloadSha256, uploadFile, downloadFile, deleteFile, request, smallUploadBody, agent };
