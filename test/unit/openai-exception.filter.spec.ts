import { ArgumentsHost, BadRequestException, HttpStatus, Logger, NotFoundException } from '@nestjs/common';
import { OpenAiExceptionFilter } from '../../src/common/openai-exception.filter';
import {
  ClientDisconnectedError,
  DatabaseUnavailableError,
  FilesError,
  FilesErrorCode,
  StorageUnavailableError,
} from '../../src/files/files.errors';

/** The status each code answers with (PRODUCT.md's table, plus the transport-level codes). */
const STATUS: Record<FilesErrorCode, number> = {
  [FilesErrorCode.InvalidApiKey]: 401,
  [FilesErrorCode.FileNotFound]: 404,
  [FilesErrorCode.MissingParameter]: 400,
  [FilesErrorCode.InvalidValue]: 400,
  [FilesErrorCode.UnsupportedPurpose]: 400,
  [FilesErrorCode.EmptyFile]: 400,
  [FilesErrorCode.FileTooLarge]: 413,
  [FilesErrorCode.QuotaExceeded]: 400,
  [FilesErrorCode.InvalidMultipart]: 400,
  [FilesErrorCode.TooManyUploads]: 429,
  [FilesErrorCode.RangeNotSatisfiable]: 416,
  [FilesErrorCode.MethodNotAllowed]: 405,
  [FilesErrorCode.ServiceUnavailable]: 503,
};

/** Just enough of an Express response for the filter. */
class FakeResponse {
  statusCode = 200;
  body: unknown;
  headers: Record<string, string> = {};
  headersSent = false;
  destroyed = false;
  status(code: number): this {
    this.statusCode = code;
    return this;
  }
  json(body: unknown): this {
    this.body = body;
    this.headersSent = true;
    return this;
  }
  setHeader(name: string, value: string): void {
    this.headers[name.toLowerCase()] = value;
  }
  destroy(): void {
    this.destroyed = true;
  }
}

function handle(exception: unknown, response = new FakeResponse(), request = { method: 'GET', path: '/v1/nope' }) {
  const host = {
    switchToHttp: () => ({ getRequest: () => request, getResponse: () => response, getNext: () => undefined }),
  } as unknown as ArgumentsHost;
  new OpenAiExceptionFilter().catch(exception, host);
  return response;
}

/** A body with exactly the OpenAI error shape. */
function errorOf(response: FakeResponse) {
  const body = response.body as { error: Record<string, unknown> };
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof body.error.message).toBe('string');
  return body.error;
}

const SECRET_DETAIL = 'connect ECONNREFUSED 10.0.0.5:9000 user=files password=hunter2';

describe(OpenAiExceptionFilter.name, () => {
  let logged: jest.SpyInstance[];
  beforeEach(() => {
    logged = (['error', 'warn', 'debug', 'log'] as const).map((level) =>
      jest.spyOn(Logger.prototype, level).mockImplementation(() => undefined),
    );
  });
  afterEach(() => logged.forEach((spy) => spy.mockRestore()));
  const logText = () => JSON.stringify(logged.flatMap((spy) => spy.mock.calls));

  it.each(Object.values(FilesErrorCode))('maps %s to its status and an OpenAI-shaped body', (code) => {
    const response = handle(new FilesError(code, `message for ${code}`, 'some_param'));
    expect(response.statusCode).toBe(STATUS[code]);
    const error = errorOf(response);
    const serverFault = STATUS[code] >= 500;
    expect(error).toEqual({
      message: expect.any(String),
      type: serverFault ? 'server_error' : 'invalid_request_error',
      param: 'some_param',
      code: code === FilesErrorCode.FileNotFound || serverFault ? null : code,
    });
    if (!serverFault) expect(error.message).toBe(`message for ${code}`);
  });

  it('answers an unknown file with 404, naming the id, and no code', () => {
    const response = handle(FilesError.notFound('file_01jd5x7k9m3n4p5q6r7s8t9v0w'));
    expect(response.statusCode).toBe(404);
    expect(errorOf(response)).toEqual({
      message: expect.stringContaining('file_01jd5x7k9m3n4p5q6r7s8t9v0w'),
      type: 'invalid_request_error',
      param: 'id',
      code: null,
    });
  });

  it('answers a missing API key with 401 invalid_api_key', () => {
    const response = handle(new FilesError(FilesErrorCode.InvalidApiKey, 'Incorrect API key provided.'));
    expect(response.statusCode).toBe(401);
    expect(errorOf(response)).toMatchObject({ code: 'invalid_api_key', param: null, type: 'invalid_request_error' });
  });

  it('sends Retry-After with a 429', () => {
    const error = new FilesError(FilesErrorCode.TooManyUploads, 'slow down', null, { retryAfterSeconds: 7 });
    expect(handle(error).headers['retry-after']).toBe('7');
  });

  it.each([
    ['StorageUnavailableError', () => new StorageUnavailableError(SECRET_DETAIL, { cause: new Error(SECRET_DETAIL) })],
    ['DatabaseUnavailableError', () => new DatabaseUnavailableError(SECRET_DETAIL, { cause: new Error(SECRET_DETAIL) })],
    ['FilesError.unavailable', () => FilesError.unavailable('database', new Error(SECRET_DETAIL))],
  ])('answers %s with 503 server_error, Retry-After, and no internal detail', (_name, make) => {
    const response = handle(make());
    expect(response.statusCode).toBe(HttpStatus.SERVICE_UNAVAILABLE);
    expect(response.headers['retry-after']).toBeDefined();
    const error = errorOf(response);
    expect(error).toMatchObject({ type: 'server_error', code: null, param: null });
    expect(error.message).toMatch(/temporarily unavailable/);
    expect(JSON.stringify(response.body)).not.toMatch(/ECONNREFUSED|10\.0\.0\.5|hunter2/);
    // The operator still learns what happened.
    expect(logText()).toContain('ECONNREFUSED');
  });

  it('answers an unknown error with a generic 500, logging but never sending its message, cause or stack', () => {
    const error = new TypeError(`Cannot read properties of undefined (${SECRET_DETAIL})`, { cause: new Error(SECRET_DETAIL) });
    const response = handle(error);
    expect(response.statusCode).toBe(500);
    const body = errorOf(response);
    expect(body).toEqual({
      message: 'The server had an error while processing your request. Sorry about that!',
      type: 'server_error',
      param: null,
      code: null,
    });
    const sent = JSON.stringify(response.body);
    expect(sent).not.toMatch(/hunter2|TypeError|Cannot read|\.ts:\d+|\n\s+at /);
    expect(logText()).toContain('hunter2');
  });

  it('answers a thrown non-Error value with a generic 500', () => {
    for (const thrown of ['a string with hunter2', undefined, null, 42, { password: 'hunter2' }]) {
      const response = handle(thrown);
      expect(response.statusCode).toBe(500);
      expect(errorOf(response).type).toBe('server_error');
      expect(JSON.stringify(response.body)).not.toContain('hunter2');
    }
  });

  it("answers Nest's NotFoundException (no route) with 404 unknown_url naming method and path", () => {
    const response = handle(new NotFoundException('Cannot DELETE /v1/whatever'), new FakeResponse(), {
      method: 'DELETE',
      path: '/v1/whatever',
    });
    expect(response.statusCode).toBe(404);
    expect(errorOf(response)).toEqual({
      message: 'Unknown request URL: DELETE /v1/whatever.',
      type: 'invalid_request_error',
      param: null,
      code: 'unknown_url',
    });
  });

  it('keeps the status and message of other HTTP exceptions', () => {
    const response = handle(new BadRequestException('Unexpected end of JSON input'));
    expect(response.statusCode).toBe(400);
    expect(errorOf(response)).toMatchObject({ message: 'Unexpected end of JSON input', type: 'invalid_request_error' });
  });

  it('destroys the response instead of writing a body when headers already went out', () => {
    const response = new FakeResponse();
    response.headersSent = true;
    const status = jest.spyOn(response, 'status');
    const json = jest.spyOn(response, 'json');
    handle(new StorageUnavailableError('stream broke'), response);
    expect(response.destroyed).toBe(true);
    expect(status).not.toHaveBeenCalled();
    expect(json).not.toHaveBeenCalled();
  });

  it('destroys a started response for an unknown error too', () => {
    const response = new FakeResponse();
    response.headersSent = true;
    handle(new Error('boom'), response);
    expect(response.destroyed).toBe(true);
    expect(response.body).toBeUndefined();
  });

  it('writes nothing when the client has already gone', () => {
    const gone = new FakeResponse();
    gone.destroyed = true;
    handle(new FilesError(FilesErrorCode.InvalidValue, 'x', 'purpose'), gone);
    expect(gone.body).toBeUndefined();

    const disconnected = handle(new ClientDisconnectedError());
    expect(disconnected.body).toBeUndefined();
    expect(disconnected.statusCode).toBe(200);
  });
});
