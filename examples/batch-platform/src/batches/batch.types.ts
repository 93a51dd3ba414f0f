/** OpenAI's Batch object, as `client.batches.create/retrieve` return it. */
export interface Batch {
  id: string;
  object: 'batch';
  endpoint: BatchEndpoint;
  errors: { object: 'list'; data: BatchError[] } | null;
  input_file_id: string;
  completion_window: '24h';
  status: BatchStatus;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_counts: { total: number; completed: number; failed: number };
  metadata: Record<string, string> | null;
}

/** What this platform implements of OpenAI's states (no cancelling, cancelled or expired). */
export type BatchStatus = 'validating' | 'in_progress' | 'finalizing' | 'completed' | 'failed';

export interface BatchError {
  code: string;
  message: string;
  param: string | null;
  /** 1-based line of the input file, when the error is about one line. */
  line: number | null;
}

export const BATCH_ENDPOINTS = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses'] as const;
export type BatchEndpoint = (typeof BATCH_ENDPOINTS)[number];

/** One line of a batch input file. */
export interface BatchRequest {
  custom_id: string;
  method: 'POST';
  url: BatchEndpoint;
  body: Record<string, unknown>;
}
