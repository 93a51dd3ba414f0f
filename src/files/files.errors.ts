/**
 * Every failure a client can cause, or can observe, has one code here. The exception filter maps
 * each code to a status and an OpenAI-shaped body with an exhaustive switch, so a new code without
 * a mapping does not compile.
 */
export enum FilesErrorCode {
  InvalidApiKey = 'invalid_api_key',
  FileNotFound = 'file_not_found',
  MissingParameter = 'missing_required_parameter',
  InvalidValue = 'invalid_value',
  UnsupportedPurpose = 'unsupported_purpose',
  EmptyFile = 'empty_file',
  FileTooLarge = 'file_too_large',
  QuotaExceeded = 'quota_exceeded',
  InvalidMultipart = 'invalid_multipart',
  TooManyUploads = 'too_many_uploads',
  RangeNotSatisfiable = 'range_not_satisfiable',
  MethodNotAllowed = 'method_not_allowed',
  ServiceUnavailable = 'service_unavailable',
}

export class FilesError extends Error {
  constructor(
    readonly code: FilesErrorCode,
    message: string,
    readonly param: string | null = null,
    options?: { cause?: unknown; retryAfterSeconds?: number; headers?: Record<string, string> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FilesError';
    this.retryAfterSeconds = options?.retryAfterSeconds;
    this.headers = options?.headers ?? {};
  }

  readonly retryAfterSeconds?: number;
  /** Response headers the error calls for (e.g. Content-Range on a 416). */
  readonly headers: Record<string, string>;

  static notFound(publicId: string): FilesError {
    const shown = publicId.length > 100 ? `${publicId.slice(0, 100)}…` : publicId;
    return new FilesError(FilesErrorCode.FileNotFound, `No such File object: ${shown}`, 'id');
  }

  static missing(param: string): FilesError {
    return new FilesError(FilesErrorCode.MissingParameter, `Missing required parameter: '${param}'.`, param);
  }

  static invalid(param: string, message: string): FilesError {
    return new FilesError(FilesErrorCode.InvalidValue, message, param);
  }

  static unavailable(what: string, cause?: unknown): FilesError {
    return new FilesError(
      FilesErrorCode.ServiceUnavailable,
      `The ${what} is temporarily unavailable. Please retry the request.`,
      null,
      { cause },
    );
  }
}

/** Raised by a storage adapter when the backend cannot be reached or answers with a server fault. */
export class StorageUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StorageUnavailableError';
  }
}

/** Raised by the repository when PostgreSQL cannot be reached or times out. */
export class DatabaseUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatabaseUnavailableError';
  }
}

/** Raised into an upload's stream when the client goes away mid-upload. */
export class ClientDisconnectedError extends Error {
  constructor() {
    super('client disconnected during upload');
    this.name = 'ClientDisconnectedError';
  }
}
