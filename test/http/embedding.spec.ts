import { Controller, Get, Module } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { Test } from '@nestjs/testing';
import type { Request } from 'express';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { APP_OPTIONS, configureApp } from '../../src/bootstrap';
import { OwnerResolver, type Unauthenticated } from '../../src/files/auth/owner-resolver';
import { FilesModule } from '../../src/files/files.module';
import { storageKeyFor } from '../../src/files/storage/storage-key';
import { createTestDatabase, type TestDatabase } from '../support/backends';
import { MemoryFileStorage } from '../support/fakes/memory-file-storage';

/** A host's own authentication: its gateway puts the tenant in a header. */
class TenantHeaderResolver extends OwnerResolver {
  resolve(request: Request): string | Unauthenticated {
    const tenant = request.headers['x-tenant'];
    return typeof tenant === 'string' && /^[a-z]+$/.test(tenant) ? `tenant-${tenant}` : { reason: 'missing' };
  }
}

@Controller('platform')
class PlatformController {
  @Get('status')
  status() {
    return { platform: 'up' };
  }
}

describe('FilesModule embedded in a host NestJS app', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let origin: string;
  const storage = new MemoryFileStorage();

  beforeAll(async () => {
    db = await createTestDatabase();
    @Module({
      imports: [
        FilesModule.forRoot({
          database: { url: db.url, poolMax: 4, connectTimeoutMs: 2000, statementTimeoutMs: 5000 },
          storage,
          ownerResolver: new TenantHeaderResolver(),
          limits: {
            maxBatchFileBytes: 1000,
            maxFileBytes: 2000,
            quotaBytesPerOwner: 10_000,
            maxConcurrentUploads: 4,
            maxConcurrentUploadsPerOwner: 2,
          },
          expiry: { sweepIntervalSeconds: 0, batchSize: 10 },
          reconcile: { intervalSeconds: 0, staleAfterSeconds: 60 },
        }),
      ],
      controllers: [PlatformController],
    })
    class HostModule {}
    const moduleRef = await Test.createTestingModule({ imports: [HostModule] }).compile();
    app = moduleRef.createNestApplication<NestExpressApplication>({ ...APP_OPTIONS, logger: ['error'] });
    configureApp(app);
    await app.listen(0, '127.0.0.1');
    origin = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  it("serves the Files API with the host's owner mapping and the host's storage", async () => {
    const created = await request(origin)
      .post('/v1/files')
      .set('x-tenant', 'acme')
      .attach('file', Buffer.from('{"custom_id":"1"}\n'), 'in.jsonl')
      .field('purpose', 'batch');
    expect(created.status).toBe(200);
    expect((await storage.head(storageKeyFor(created.body.id)))?.size).toBe(18);

    const mine = await request(origin).get('/v1/openai/files').set('x-tenant', 'acme');
    expect(mine.body.data.map((f: { id: string }) => f.id)).toEqual([created.body.id]);
    const theirs = await request(origin).get(`/v1/files/${created.body.id}`).set('x-tenant', 'globex');
    expect(theirs.status).toBe(404);
  });

  it("applies the host's limits", async () => {
    const res = await request(origin)
      .post('/v1/files')
      .set('x-tenant', 'acme')
      .attach('file', Buffer.alloc(1001, 0x61), 'big.jsonl')
      .field('purpose', 'batch');
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('file_too_large');
  });

  it('answers requests the resolver cannot map with 401, in OpenAI shape', async () => {
    const res = await request(origin).get('/v1/files');
    expect(res.status).toBe(401);
    expect(res.body.error).toMatchObject({ code: 'invalid_api_key', type: 'invalid_request_error' });
  });

  it("leaves the host's own routes alone (no Files API guard or error shape on them)", async () => {
    const res = await request(origin).get('/platform/status');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ platform: 'up' });
  });
});
