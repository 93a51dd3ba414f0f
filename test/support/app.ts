import type { NestExpressApplication } from '@nestjs/platform-express';
import { Test } from '@nestjs/testing';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { AppModule } from '../../src/app.module';
import { APP_OPTIONS, configureApp, configureServer } from '../../src/bootstrap';
import { Clock } from '../../src/common/clock';
import { type AppConfig, loadConfig } from '../../src/config/app-config';
import { createTestBucket, createTestDatabase, type TestBucket, type TestDatabase } from './backends';

/** A clock that follows real time plus an offset the test controls. */
export class TestClock extends Clock {
  private offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

/** API keys every test app accepts. Owners: alice, bob, carol. */
export const KEYS = {
  alice: 'sk-test-alice-0000000001',
  bob: 'sk-test-bob-00000000002',
  carol: 'sk-test-carol-000000003',
} as const;

export interface TestApp {
  app: NestExpressApplication;
  /** e.g. http://127.0.0.1:PORT */
  origin: string;
  config: AppConfig;
  clock: TestClock;
  database: TestDatabase;
  bucket?: TestBucket;
  fsDir?: string;
  close(): Promise<void>;
}

export interface TestAppOptions {
  storage: 'fs' | 's3';
  /** Extra environment (limits, intervals…), as the service would read it. */
  env?: Record<string, string>;
  /**
   * Last say over the environment the service reads, once the test database and bucket are known:
   * e.g. to send DATABASE_URL or S3_ENDPOINT through a FaultProxy. The returned environment is used
   * as is; the test's own handles (`database.url`, `bucket.client`) keep talking to the real servers.
   */
  rewriteEnv?: (env: Record<string, string | undefined>) => Record<string, string | undefined>;
}

/**
 * The whole service (AppModule, real pipes, guards and filters) on a fresh database and a fresh
 * bucket or directory, listening on an ephemeral port. Scheduled jobs are off unless `env` turns
 * them on; tests call the jobs' handlers directly with the TestClock.
 */
export async function startTestApp(options: TestAppOptions): Promise<TestApp> {
  const database = await createTestDatabase();
  const bucket = options.storage === 's3' ? await createTestBucket() : undefined;
  const fsDir = options.storage === 'fs' ? await mkdtemp(path.join(tmpdir(), 'files-api-test-')) : undefined;
  const env: Record<string, string | undefined> = {
    DATABASE_URL: database.url,
    API_KEYS: Object.entries(KEYS)
      .map(([owner, key]) => `${key}:${owner}`)
      .join(','),
    FILES_EXPIRY_SWEEP_INTERVAL_SECONDS: '0',
    FILES_RECONCILE_INTERVAL_SECONDS: '0',
    LOG_LEVEL: 'error',
    ...(bucket ? bucket.env : { STORAGE_DRIVER: 'fs', FS_STORAGE_DIR: fsDir }),
    ...options.env,
  };
  const config = loadConfig(options.rewriteEnv ? options.rewriteEnv(env) : env);
  const clock = new TestClock();
  const moduleRef = await Test.createTestingModule({ imports: [AppModule.forRoot(config)] })
    .overrideProvider(Clock)
    .useValue(clock)
    .compile();
  const app = moduleRef.createNestApplication<NestExpressApplication>({ ...APP_OPTIONS, logger: ['error'] });
  configureApp(app);
  await app.listen(0, '127.0.0.1');
  configureServer(app.getHttpServer());
  const { port } = app.getHttpServer().address() as AddressInfo;
  return {
    app,
    origin: `http://127.0.0.1:${port}`,
    config,
    clock,
    database,
    bucket,
    fsDir,
    close: async () => {
      await app.close();
      await database.drop();
      await bucket?.drop();
      if (fsDir) await rm(fsDir, { recursive: true, force: true });
    },
  };
}
