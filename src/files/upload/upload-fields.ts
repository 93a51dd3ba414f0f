import { PLATFORM_PURPOSES, UNSUPPORTED_PURPOSES, UPLOAD_PURPOSES } from '../file.types';
import { FilesError, FilesErrorCode } from '../files.errors';

export const MIN_EXPIRES_AFTER_SECONDS = 3600;
export const MAX_EXPIRES_AFTER_SECONDS = 2_592_000;
export const DEFAULT_EXPIRES_AFTER_SECONDS = MAX_EXPIRES_AFTER_SECONDS;

export interface UploadFields {
  purpose: (typeof UPLOAD_PURPOSES)[number];
  expiresAfterSeconds: number;
}

const KNOWN_FIELDS = new Set(['file', 'purpose', 'expires_after']);

/**
 * Validates the text fields of an upload form. They may arrive before or after the file part,
 * so this runs once the whole form has been read (and, for `purpose`, also as soon as it arrives,
 * to refuse a bad upload before storing it).
 */
export function parseUploadFields(body: Record<string, unknown>): UploadFields {
  checkFieldNames(body);
  return {
    purpose: parsePurpose(body.purpose),
    expiresAfterSeconds: parseExpiresAfter(body.expires_after),
  };
}

/**
 * Checks the fields that arrived before the file part, so a form that is already known to be bad
 * is refused before its file is stored. Returns the purpose if it was among them.
 */
export function checkEarlyFields(body: Record<string, unknown>): UploadFields['purpose'] | undefined {
  checkFieldNames(body);
  if (body.expires_after !== undefined) parseExpiresAfter(body.expires_after);
  return body.purpose === undefined ? undefined : parsePurpose(body.purpose);
}

function checkFieldNames(body: Record<string, unknown>): void {
  for (const name of Object.keys(body)) {
    if (!KNOWN_FIELDS.has(name)) {
      throw FilesError.invalid(name, `Unrecognized request argument supplied: ${name}`);
    }
  }
  if ('file' in body) {
    throw FilesError.invalid('file', "'file' must be a file upload (a multipart part with a filename), not a text field.");
  }
}

export function parsePurpose(value: unknown): UploadFields['purpose'] {
  if (value === undefined) throw FilesError.missing('purpose');
  if (typeof value !== 'string') throw FilesError.invalid('purpose', "'purpose' must be given once, as a string.");
  if ((UPLOAD_PURPOSES as readonly string[]).includes(value)) return value as UploadFields['purpose'];
  if ((UNSUPPORTED_PURPOSES as readonly string[]).includes(value)) {
    throw new FilesError(
      FilesErrorCode.UnsupportedPurpose,
      `Purpose '${value}' is not yet supported. Supported purposes: ${UPLOAD_PURPOSES.join(', ')}.`,
      'purpose',
    );
  }
  if ((PLATFORM_PURPOSES as readonly string[]).includes(value)) {
    throw FilesError.invalid('purpose', `Files with purpose '${value}' are created by the platform and cannot be uploaded.`);
  }
  throw FilesError.invalid(
    'purpose',
    `Invalid value for 'purpose': ${JSON.stringify(truncate(value))}. Supported values: ${UPLOAD_PURPOSES.join(', ')}.`,
  );
}

/**
 * `expires_after` arrives either as bracketed form fields (`expires_after[anchor]`,
 * `expires_after[seconds]`, parsed into an object) or as one JSON-valued field.
 */
export function parseExpiresAfter(value: unknown): number {
  if (value === undefined) return DEFAULT_EXPIRES_AFTER_SECONDS;
  let policy: unknown = value;
  if (typeof value === 'string') {
    try {
      policy = JSON.parse(value);
    } catch {
      throw FilesError.invalid('expires_after', "'expires_after' must be an object with 'anchor' and 'seconds'.");
    }
  }
  if (policy === null || typeof policy !== 'object' || Array.isArray(policy)) {
    throw FilesError.invalid('expires_after', "'expires_after' must be an object with 'anchor' and 'seconds'.");
  }
  const fields = policy as Record<string, unknown>;
  for (const name of Object.keys(fields)) {
    if (name === '') {
      // The form parser files a plain `expires_after` next to `expires_after[...]` fields under ''.
      throw FilesError.invalid('expires_after', "'expires_after' must be given once: as one JSON field or as expires_after[...] fields.");
    }
    if (name !== 'anchor' && name !== 'seconds') {
      throw FilesError.invalid(`expires_after.${name}`, `Unrecognized argument: expires_after[${name}]`);
    }
  }
  if (fields.anchor !== undefined && fields.anchor !== 'created_at') {
    throw FilesError.invalid(
      'expires_after.anchor',
      `Invalid value for 'expires_after.anchor': ${JSON.stringify(truncate(fields.anchor))}. Supported values: created_at.`,
    );
  }
  if (fields.seconds === undefined) return DEFAULT_EXPIRES_AFTER_SECONDS;
  const seconds = toInteger(fields.seconds);
  if (seconds === null || seconds < MIN_EXPIRES_AFTER_SECONDS || seconds > MAX_EXPIRES_AFTER_SECONDS) {
    throw FilesError.invalid(
      'expires_after.seconds',
      `Invalid value for 'expires_after.seconds': ${JSON.stringify(truncate(fields.seconds))}. ` +
        `Expected an integer between ${MIN_EXPIRES_AFTER_SECONDS} and ${MAX_EXPIRES_AFTER_SECONDS}.`,
    );
  }
  return seconds;
}

/** Form fields are strings; the JSON form may carry a number. Anything else is not an integer. */
function toInteger(value: unknown): number | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : null;
  if (typeof value === 'string' && /^\d{1,10}$/.test(value)) return Number(value);
  return null;
}

function truncate(value: unknown): unknown {
  return typeof value === 'string' && value.length > 64 ? `${value.slice(0, 64)}…` : value;
}
