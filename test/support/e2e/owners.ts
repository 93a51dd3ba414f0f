import OpenAI from 'openai';
import { KEYS, type TestApp } from '../app';

/**
 * Owners for the end-to-end tests. alice, bob and carol keep the keys every test app knows; the
 * others exist so a test that counts an owner's files owns that owner alone.
 */
export const E2E_KEYS = {
  ...KEYS,
  pager: 'sk-e2e-pager-0000000004',
  python: 'sk-e2e-python-000000005',
  quota: 'sk-e2e-quota-0000000006',
  sizer: 'sk-e2e-sizer-0000000007',
  leaver: 'sk-e2e-leaver-000000008',
} as const;

export type E2eOwner = keyof typeof E2E_KEYS;

/** `API_KEYS` for a test app that knows every E2E owner. */
export function e2eApiKeysEnv(): { API_KEYS: string } {
  return {
    API_KEYS: Object.entries(E2E_KEYS)
      .map(([owner, key]) => `${key}:${owner}`)
      .join(','),
  };
}

/** The two base URLs the service serves the Files API under. */
export const BASE_PATHS = ['/v1/openai', '/v1'] as const;
export type BasePath = (typeof BASE_PATHS)[number];

export interface ClientOptions {
  base?: BasePath;
  /** Defaults to 0: a retried streaming upload or a retried refusal would hide what happened. */
  maxRetries?: number;
  fetch?: typeof fetch;
}

/** The official openai client acting for `owner` (or for an arbitrary key) against the test app. */
export function openaiFor(t: TestApp, owner: E2eOwner | { apiKey: string }, options: ClientOptions = {}): OpenAI {
  return new OpenAI({
    apiKey: typeof owner === 'string' ? E2E_KEYS[owner] : owner.apiKey,
    baseURL: `${t.origin}${options.base ?? '/v1/openai'}`,
    maxRetries: options.maxRetries ?? 0,
    timeout: 60_000,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
}
