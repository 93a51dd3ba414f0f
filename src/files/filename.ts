/** Longest filename kept, in UTF-8 bytes (the common filesystem limit). */
export const MAX_FILENAME_BYTES = 255;
const FALLBACK = 'file';

/**
 * Turns a client-supplied filename into one safe to store and show: no directory part, no
 * control characters (CR/LF included), no invalid Unicode, NFC-normalized, at most 255 UTF-8
 * bytes with the extension kept. Never used to build a storage key.
 */
export function sanitizeFilename(raw: string | undefined | null): string {
  if (typeof raw !== 'string') return FALLBACK;
  // Lone surrogates cannot be encoded as UTF-8; toWellFormed replaces them with U+FFFD.
  let name = raw.toWellFormed();
  name = name.split(/[/\\]/).pop() ?? '';
  name = name.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '');
  // Normalized only now: a removed character may have separated a letter from its accent.
  name = name.normalize('NFC').trim();
  if (name === '' || name === '.' || name === '..') return FALLBACK;
  return truncateUtf8(name, MAX_FILENAME_BYTES);
}

function truncateUtf8(name: string, maxBytes: number): string {
  if (Buffer.byteLength(name) <= maxBytes) return name;
  const dot = name.lastIndexOf('.');
  const extension = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : '';
  const budget = maxBytes - Buffer.byteLength(extension);
  let stem = '';
  for (const char of name.slice(0, name.length - extension.length)) {
    if (Buffer.byteLength(stem + char) > budget) break;
    stem += char;
  }
  return stem + extension;
}

/**
 * `Content-Disposition: attachment` for a stored filename: an ASCII fallback in `filename` and
 * the exact name in RFC 5987 `filename*`, so no header injection and no mojibake.
 */
export function contentDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_').replace(/%/g, '_');
  const encoded = encodeURIComponent(filename).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
