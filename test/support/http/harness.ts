import { Client } from 'pg';
import { KEYS, startTestApp, type TestApp } from '../app';

/** Both base paths the Files API is served under; every HTTP case runs under each. */
export const BASES = ['/v1/openai/files', '/v1/files'] as const;
export type Base = (typeof BASES)[number];

export interface TestOwner {
  name: string;
  key: string;
  /** The `Authorization` header value. */
  auth: string;
}

/** A test app (whole AppModule, real PostgreSQL, real storage) plus a SQL client on its database. */
export interface Harness {
  t: TestApp;
  /** Connected to the app's own database, for asserting what the service stored. */
  db: Client;
  /** A new owner no other test in this file has used, so tests sharing one app never see each other's files. */
  owner(label?: string): TestOwner;
  /** The named owners of test/support/app.ts (alice, bob, carol). */
  alice: TestOwner;
  bob: TestOwner;
  carol: TestOwner;
  close(): Promise<void>;
}

const POOL_SIZE = 64;

/**
 * Starts one app for a test file. Besides alice/bob/carol it accepts a pool of extra API keys, so
 * each test can take fresh owners and assert exact listings and usage on a shared app.
 */
export async function startHarness(options: { storage?: 'fs' | 's3'; env?: Record<string, string> } = {}): Promise<Harness> {
  const pool = Array.from({ length: POOL_SIZE }, (_, i) => {
    const name = `owner${String(i + 1).padStart(2, '0')}`;
    return { name, key: `sk-http-${name}-${'x'.repeat(12)}` };
  });
  const named = Object.entries(KEYS).map(([name, key]) => ({ name, key }));
  const apiKeys = [...named, ...pool].map(({ key, name }) => `${key}:${name}`).join(',');
  const t = await startTestApp({ storage: options.storage ?? 'fs', env: { API_KEYS: apiKeys, ...options.env } });
  const db = new Client({ connectionString: t.database.url });
  await db.connect();
  const toOwner = ({ name, key }: { name: string; key: string }): TestOwner => ({ name, key, auth: `Bearer ${key}` });
  let next = 0;
  return {
    t,
    db,
    owner: () => {
      if (next >= pool.length) throw new Error(`more than ${POOL_SIZE} fresh owners used in one file`);
      return toOwner(pool[next++]);
    },
    alice: toOwner({ name: 'alice', key: KEYS.alice }),
    bob: toOwner({ name: 'bob', key: KEYS.bob }),
    carol: toOwner({ name: 'carol', key: KEYS.carol }),
    close: async () => {
      await db.end();
      await t.close();
    },
  };
}
