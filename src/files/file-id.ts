import { randomBytes } from 'node:crypto';

/**
 * Public file ids: `file_` + 26 lowercase Crockford base32 characters encoding 128 bits, the first
 * 48 of which are the creation time in milliseconds and the other 80 random (the ULID layout).
 *
 * Why this shape: the id alone fixes a file's position in every listing (ids sort by creation
 * time), so a pagination cursor keeps working after its file was deleted or expired, and 80 random
 * bits make ids unguessable. In the database the same 128 bits are stored as a `uuid`, whose
 * ordering is bytewise and therefore identical to the ordering of the public ids.
 */
export const FILE_ID_PREFIX = 'file_';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const DECODE = new Map([...ALPHABET].map((c, i) => [c, i]));
const ENCODED_LENGTH = 26;
const PUBLIC_ID = /^file_[0-7][0-9abcdefghjkmnpqrstvwxyz]{25}$/;
const MAX_TIMESTAMP = 2 ** 48 - 1;

export interface FileId {
  /** `file_…`, as clients see it. */
  readonly publicId: string;
  /** The same 128 bits as a canonical UUID string, as the database stores it. */
  readonly uuid: string;
  /** Creation time in milliseconds since the epoch. */
  readonly timestampMs: number;
}

export function newFileId(nowMs: number): FileId {
  if (!Number.isInteger(nowMs) || nowMs < 0 || nowMs > MAX_TIMESTAMP) {
    throw new RangeError(`timestamp out of range: ${nowMs}`);
  }
  const bytes = Buffer.alloc(16);
  bytes.writeUIntBE(nowMs, 0, 6);
  randomBytes(10).copy(bytes, 6);
  return fromBytes(bytes);
}

/** Parses a public id; returns null for anything that is not exactly a well-formed id. */
export function parseFileId(publicId: string): FileId | null {
  if (typeof publicId !== 'string' || !PUBLIC_ID.test(publicId)) return null;
  const body = publicId.slice(FILE_ID_PREFIX.length);
  let value = 0n;
  for (const c of body) value = (value << 5n) | BigInt(DECODE.get(c)!);
  const bytes = Buffer.from(value.toString(16).padStart(32, '0'), 'hex');
  return fromBytes(bytes);
}

/** The public id of a database uuid. */
export function fileIdFromUuid(uuid: string): FileId {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new RangeError(`not a uuid: ${uuid}`);
  return fromBytes(Buffer.from(hex, 'hex'));
}

function fromBytes(bytes: Buffer): FileId {
  const hex = bytes.toString('hex');
  let value = BigInt(`0x${hex}`);
  let body = '';
  for (let i = 0; i < ENCODED_LENGTH; i++) {
    body = ALPHABET[Number(value & 31n)] + body;
    value >>= 5n;
  }
  return {
    publicId: FILE_ID_PREFIX + body,
    uuid: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
    timestampMs: bytes.readUIntBE(0, 6),
  };
}
