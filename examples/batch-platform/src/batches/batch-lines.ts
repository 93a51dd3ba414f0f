import { randomBytes } from 'node:crypto';
import type { BatchError, BatchRequest } from './batch.types';

/** A request line, or why it is not one (OpenAI's validation error codes). */
export function parseRequestLine(text: string, endpoint: string): BatchRequest | Omit<BatchError, 'line'> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { code: 'invalid_json_line', message: 'This line is not parseable as valid JSON.', param: null };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { code: 'invalid_json_line', message: 'Each line must be a JSON object.', param: null };
  }
  const line = value as Record<string, unknown>;
  if (typeof line.custom_id !== 'string' || line.custom_id === '') {
    return { code: 'missing_required_parameter', message: 'custom_id must be a non-empty string.', param: 'custom_id' };
  }
  if (line.method !== 'POST') return { code: 'invalid_method', message: 'method must be POST.', param: 'method' };
  if (line.url !== endpoint) {
    return { code: 'mismatched_endpoint', message: `url must be the batch's endpoint, ${endpoint}.`, param: 'url' };
  }
  if (typeof line.body !== 'object' || line.body === null || Array.isArray(line.body)) {
    return { code: 'invalid_request', message: 'body must be a JSON object.', param: 'body' };
  }
  return line as unknown as BatchRequest;
}

export function isRequest(parsed: BatchRequest | Omit<BatchError, 'line'>): parsed is BatchRequest {
  return 'custom_id' in parsed;
}

/** One line of the output file, in OpenAI's batch output format. */
export function outputLine(request: BatchRequest, body: Record<string, unknown>): string {
  return (
    JSON.stringify({
      id: `batch_req_${randomBytes(12).toString('hex')}`,
      custom_id: request.custom_id,
      response: { status_code: 200, request_id: `req_${randomBytes(12).toString('hex')}`, body },
      error: null,
    }) + '\n'
  );
}
