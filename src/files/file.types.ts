/** Purposes a client may upload with. */
export const UPLOAD_PURPOSES = ['batch'] as const;
/** Purposes that exist but cannot be uploaded yet. */
export const UNSUPPORTED_PURPOSES = ['fine-tune'] as const;
/** Purposes written only by the platform, never through POST /files (they count toward quota). */
export const PLATFORM_PURPOSES = ['batch-output'] as const;
export const ALL_PURPOSES = [...UPLOAD_PURPOSES, ...UNSUPPORTED_PURPOSES, ...PLATFORM_PURPOSES] as const;

export type FilePurpose = (typeof UPLOAD_PURPOSES)[number] | (typeof PLATFORM_PURPOSES)[number];

/** A file as the domain sees it: committed (`ready`) metadata. */
export interface StoredFile {
  /** Public id, `file_…`. */
  id: string;
  ownerId: string;
  purpose: string;
  filename: string;
  bytes: number;
  /** Hex SHA-256 of the content. */
  sha256: string | null;
  createdAt: Date;
  expiresAt: Date;
}

export type ListOrder = 'asc' | 'desc';

export interface ListQuery {
  /** Public id of the file the page starts after (it may no longer exist). */
  after?: string;
  limit: number;
  order: ListOrder;
  purpose?: string;
}

export interface FilePage {
  files: StoredFile[];
  hasMore: boolean;
}
