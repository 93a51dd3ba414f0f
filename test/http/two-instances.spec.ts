import { Controller, Get, Injectable, Module, type DynamicModule } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { Test } from '@nestjs/testing';
import type { Request } from 'express';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Pool } from 'pg';
import request from 'supertest';
import {
  FilesModule,
  FilesService,
  InjectFilesService,
  OwnerResolver,
  type FileObject,
  type FilesEventName,
  type Unauthenticated,
} from '../../src';
import { storageKeyFor } from '../../src/files/storage/storage-key';
import { createTestBucket, createTestDatabase, listKeys, type TestBucket, type TestDatabase } from '../support/backends';
import { connectionsTo, expireNow, schedulerRegistries } from '../support/host-app';
import { walk } from '../support/http/residue';
import { eventually } from '../support/streams';

/** The host's own authentication for the archive: its gateway puts the tenant in a header. */
@Injectable()
class TenantHeaderResolver extends OwnerResolver {
  resolve(request: Request): string | Unauthenticated {
    const tenant = request.headers['x-tenant'];
    return typeof tenant === 'string' && /^[a-z]+$/.test(tenant) ? tenant : { reason: 'missing' };
  }
}

@Module({ providers: [TenantHeaderResolver], exports: [TenantHeaderResolver] })
class HostAuthModule {}

/** The host's own typed configuration, from its own config module. */
class ArchiveConfig {
  constructor(
    readonly databaseUrl: string,
    readonly dir: string,
  ) {}
}

@Module({})
class ArchiveConfigModule {
  static forRoot(config: ArchiveConfig): DynamicModule {
    return { module: ArchiveConfigModule, providers: [{ provide: ArchiveConfig, useValue: config }], exports: [ArchiveConfig] };
  }
}

/** Host code using both instances. */
@Injectable()
class PlatformService {
  constructor(
    @InjectFilesService('inputs') readonly inputs: FilesService,
    @InjectFilesService('archive') readonly archive: FilesService,
  ) {}
}

@Controller('platform')
class PlatformController {
  @Get('status')
  status() {
    return { platform: 'up' };
  }
}

const INPUT_LIMITS = { maxBatchFileBytes: 1000, maxFileBytes: 2000, quotaBytesPerOwner: 5000 };
const ARCHIVE_LIMITS = { maxBatchFileBytes: 100, maxFileBytes: 200, quotaBytesPerOwner: 1000 };

async function listen(app: NestExpressApplication): Promise<string> {
  await app.listen(0, '127.0.0.1');
  return `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
}

describe('Two FilesModule instances in one host app', () => {
  let inputsDb: TestDatabase;
  let archiveDb: TestDatabase;
  let bucket: TestBucket;
  let archiveDir: string;
  let app: NestExpressApplication;
  let origin: string;
  let platform: PlatformService;
  let inputsPool: Pool;
  let archivePool: Pool;

  beforeAll(async () => {
    [inputsDb, archiveDb, bucket] = await Promise.all([createTestDatabase(), createTestDatabase(), createTestBucket()]);
    archiveDir = await mkdtemp(path.join(tmpdir(), 'files-api-archive-'));
    @Module({
      imports: [
        FilesModule.forRoot({
          name: 'inputs',
          database: { url: inputsDb.url, poolMax: 3 },
          storage: bucket.settings,
          // A plain function: the host's gateway sets x-user (and its auth backend can fail).
          ownerResolver: async (req) => {
            if (req.headers['x-user'] === 'boom') throw new Error('auth backend down');
            return req.headers['x-user'] as string | undefined;
          },
          limits: INPUT_LIMITS,
          jobs: { reconcile: false },
          expiry: { sweepIntervalSeconds: 1 },
        }),
        FilesModule.forRootAsync({
          name: 'archive',
          routes: ['archive/v1/files'],
          imports: [HostAuthModule, ArchiveConfigModule.forRoot(new ArchiveConfig(archiveDb.url, archiveDir))],
          inject: [TenantHeaderResolver, ArchiveConfig],
          useFactory: (resolver: TenantHeaderResolver, config: ArchiveConfig) => ({
            database: { url: config.databaseUrl, poolMax: 3 },
            storage: { driver: 'fs', dir: config.dir },
            ownerResolver: resolver,
            limits: ARCHIVE_LIMITS,
            jobs: true,
            expiry: { sweepIntervalSeconds: 1 },
            reconcile: { intervalSeconds: 3600 },
          }),
        }),
      ],
      controllers: [PlatformController],
      providers: [PlatformService],
    })
    class HostModule {}
    const moduleRef = await Test.createTestingModule({ imports: [HostModule] }).compile();
    // Nest's defaults: the host keeps its global JSON and urlencoded body parsers.
    app = moduleRef.createNestApplication<NestExpressApplication>({ logger: false });
    origin = await listen(app);
    platform = app.get(PlatformService);
    inputsPool = new Pool({ connectionString: inputsDb.url, max: 1 });
    archivePool = new Pool({ connectionString: archiveDb.url, max: 1 });
  });

  afterAll(async () => {
    await app?.close();
    await Promise.all([inputsPool?.end(), archivePool?.end()]);
    await Promise.all([inputsDb?.drop(), archiveDb?.drop(), bucket?.drop()]);
    if (archiveDir) await rm(archiveDir, { recursive: true, force: true });
  });

  const inputs = () => request(origin);
  const asUser = (req: request.Test, user = 'acme') => req.set('x-user', user);
  const asTenant = (req: request.Test, tenant = 'acme') => req.set('x-tenant', tenant);
  const upload = (req: request.Test, bytes = 50, purpose = 'batch') =>
    req.attach('file', Buffer.alloc(bytes, 0x61), 'in.jsonl').field('purpose', purpose);

  async function uploadToInputs(bytes = 50, user = 'acme'): Promise<FileObject> {
    const res = await upload(asUser(inputs().post('/v1/files'), user), bytes);
    expect(res.status).toBe(200);
    return res.body;
  }

  async function uploadToArchive(bytes = 50, tenant = 'acme'): Promise<FileObject> {
    const res = await upload(asTenant(inputs().post('/archive/v1/files'), tenant), bytes);
    expect(res.status).toBe(200);
    return res.body;
  }

  /** Records the events of `service` for the duration of `work`. */
  async function eventsDuring(service: FilesService, work: () => Promise<unknown>): Promise<[FilesEventName, unknown][]> {
    const seen: [FilesEventName, unknown][] = [];
    const names: FilesEventName[] = ['file.created', 'file.deleted', 'file.expired'];
    const stops = names.map((name) => service.on(name, (event) => void seen.push([name, event])));
    try {
      await work();
    } finally {
      stops.forEach((stop) => stop());
    }
    return seen;
  }

  describe('routes and owner resolvers', () => {
    it('serves the inputs instance on the default routes, with its function resolver (x-user)', async () => {
      const file = await uploadToInputs();
      for (const base of ['/v1/files', '/v1/openai/files']) {
        const res = await asUser(inputs().get(`${base}/${file.id}`));
        expect(res.status).toBe(200);
        expect(res.body).toEqual(file);
      }
      const wrongHeader = await asTenant(inputs().get('/v1/files'));
      expect(wrongHeader.status).toBe(401);
      expect(wrongHeader.body.error).toMatchObject({ code: 'invalid_api_key', type: 'invalid_request_error' });
    });

    it('serves the archive instance on its own prefix only, with its provider resolver (x-tenant)', async () => {
      const file = await uploadToArchive();
      const res = await asTenant(inputs().get(`/archive/v1/files/${file.id}`));
      expect(res.status).toBe(200);
      expect(res.body).toEqual(file);
      const content = await asTenant(inputs().get(`/archive/v1/files/${file.id}/content`));
      expect(content.status).toBe(200);
      expect(content.body).toEqual(Buffer.alloc(50, 0x61));
      const wrongHeader = await asUser(inputs().get('/archive/v1/files'));
      expect(wrongHeader.status).toBe(401);
      expect(wrongHeader.body.error.code).toBe('invalid_api_key');
      // Not under the other instance's paths.
      expect((await asTenant(inputs().get('/archive/v1/openai/files'))).status).toBe(404);
    });

    it('applies each instance its own limits', async () => {
      const big = await upload(asUser(inputs().post('/v1/files')), 500);
      expect(big.status).toBe(200);
      const tooBig = await upload(asTenant(inputs().post('/archive/v1/files')), 500);
      expect(tooBig.status).toBe(413);
      expect(tooBig.body.error).toMatchObject({ code: 'file_too_large', message: expect.stringContaining('100 bytes') });
      const overInputs = await upload(asUser(inputs().post('/v1/files')), 1001);
      expect(overInputs.status).toBe(413);
      expect(overInputs.body.error.message).toContain('1000 bytes');
      await expect(platform.archive.usage('acme')).resolves.toMatchObject({ quotaBytes: 1000 });
      await expect(platform.inputs.usage('acme')).resolves.toMatchObject({ quotaBytes: 5000 });
    });

    it('answers a resolver that throws with a generic 500 in OpenAI shape, never showing the cause', async () => {
      const res = await asUser(inputs().get('/v1/files'), 'boom');
      expect(res.status).toBe(500);
      expect(res.body.error).toMatchObject({ type: 'server_error' });
      expect(JSON.stringify(res.body)).not.toContain('auth backend down');
    });

    it("leaves the host's own routes alone", async () => {
      const res = await inputs().get('/platform/status');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ platform: 'up' });
    });
  });

  describe('isolation', () => {
    it('a file uploaded through one instance does not exist through the other, for the same owner', async () => {
      const input = await uploadToInputs();
      const archived = await uploadToArchive();
      for (const suffix of ['', '/content']) {
        const viaArchive = await asTenant(inputs().get(`/archive/v1/files/${input.id}${suffix}`));
        expect(viaArchive.status).toBe(404);
        expect(viaArchive.body.error).toMatchObject({ code: null, param: 'id' });
        expect((await asUser(inputs().get(`/v1/files/${archived.id}${suffix}`))).status).toBe(404);
      }
      expect((await asTenant(inputs().delete(`/archive/v1/files/${input.id}`))).status).toBe(404);
      expect((await asUser(inputs().delete(`/v1/files/${archived.id}`))).status).toBe(404);
      const archiveList = await asTenant(inputs().get('/archive/v1/files'));
      expect(archiveList.body.data.map((f: FileObject) => f.id)).not.toContain(input.id);
      const inputList = await asUser(inputs().get('/v1/files'));
      expect(inputList.body.data.map((f: FileObject) => f.id)).not.toContain(archived.id);
      // Both still there for their own instance.
      expect((await asUser(inputs().get(`/v1/files/${input.id}`))).status).toBe(200);
      expect((await asTenant(inputs().get(`/archive/v1/files/${archived.id}`))).status).toBe(200);
    });

    it("puts each instance's bytes in its own storage and rows in its own database", async () => {
      const input = await uploadToInputs();
      const archived = await uploadToArchive();
      const bucketKeys = await listKeys(bucket.client, bucket.settings.bucket);
      const dirFiles = await walk(archiveDir);
      expect(bucketKeys).toContain(storageKeyFor(input.id));
      expect(bucketKeys).not.toContain(storageKeyFor(archived.id));
      expect(dirFiles).toContain(storageKeyFor(archived.id));
      expect(dirFiles).not.toContain(storageKeyFor(input.id));
      const idsIn = async (pool: Pool) => (await pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM files`)).rows[0].n;
      const inputRows = Number(await idsIn(inputsPool));
      const archiveRows = Number(await idsIn(archivePool));
      await uploadToInputs();
      expect(Number(await idsIn(inputsPool))).toBe(inputRows + 1);
      expect(Number(await idsIn(archivePool))).toBe(archiveRows);
    });
  });

  describe('host code with @InjectFilesService', () => {
    it('gets two distinct services, each writing to its own instance', async () => {
      expect(platform.inputs).toBeInstanceOf(FilesService);
      expect(platform.archive).toBeInstanceOf(FilesService);
      expect(platform.inputs).not.toBe(platform.archive);

      const output = await platform.inputs.createFile({ ownerId: 'acme', purpose: 'batch-output', filename: 'out.jsonl', content: 'out\n' });
      const archived = await platform.archive.createFile({ ownerId: 'acme', purpose: 'batch', filename: 'a.jsonl', content: 'arc\n' });
      expect(await listKeys(bucket.client, bucket.settings.bucket)).toContain(storageKeyFor(output.id));
      expect(await walk(archiveDir)).toContain(storageKeyFor(archived.id));

      const viaHttp = await asUser(inputs().get(`/v1/files?purpose=batch-output`));
      expect(viaHttp.body.data).toContainEqual(output);
      const content = await asTenant(inputs().get(`/archive/v1/files/${archived.id}/content`));
      expect(content.body.toString()).toBe('arc\n');
      await expect(platform.archive.retrieve('acme', output.id)).rejects.toMatchObject({ code: 'file_not_found' });
    });

    it('emits file.created for an HTTP upload on the uploading instance only', async () => {
      let file: FileObject | undefined;
      let archiveSeen: unknown[] = [];
      const inputsSeen = await eventsDuring(platform.inputs, async () => {
        archiveSeen = await eventsDuring(platform.archive, async () => {
          file = await uploadToInputs(20, 'globex');
        });
      });
      expect(inputsSeen).toEqual([['file.created', { ownerId: 'globex', file }]]);
      expect(archiveSeen).toEqual([]);
    });

    it('emits file.deleted for an HTTP delete', async () => {
      const file = await uploadToArchive(10, 'globex');
      const seen = await eventsDuring(platform.archive, async () => {
        expect((await asTenant(inputs().delete(`/archive/v1/files/${file.id}`), 'globex')).status).toBe(200);
      });
      expect(seen).toEqual([['file.deleted', { ownerId: 'globex', fileId: file.id }]]);
    });

    it("a platform write with bypassQuota takes the owner past the quota; their next HTTP upload is refused", async () => {
      const owner = 'initech';
      await uploadToInputs(1000, owner);
      await platform.inputs.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'o', content: Buffer.alloc(2000), bypassQuota: true });
      await platform.inputs.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'o', content: Buffer.alloc(2000), bypassQuota: true });
      await platform.inputs.createFile({ ownerId: owner, purpose: 'batch-output', filename: 'o', content: Buffer.alloc(1500), bypassQuota: true });
      await expect(platform.inputs.usage(owner)).resolves.toEqual({ usedBytes: 6500, quotaBytes: 5000 });
      const refused = await upload(asUser(inputs().post('/v1/files'), owner), 10);
      expect(refused.status).toBe(400);
      expect(refused.body.error.code).toBe('quota_exceeded');
      await expect(platform.inputs.usage(owner)).resolves.toEqual({ usedBytes: 6500, quotaBytes: 5000 });
    });
  });

  describe("the host's global body parser", () => {
    it('does not get in the way of multipart uploads (they stream past it)', async () => {
      const res = await asUser(inputs().post('/v1/files'))
        .attach('file', Buffer.from('{"custom_id":"1"}\n'), 'in.jsonl')
        .field('purpose', 'batch');
      expect(res.status).toBe(200);
      expect(res.body.bytes).toBe(18);
    });

    it('lets JSON and urlencoded bodies through to the Files checks (400 invalid_multipart)', async () => {
      const json = await asUser(inputs().post('/v1/files')).send({ purpose: 'batch', file: 'x' });
      expect(json.status).toBe(400);
      expect(json.body.error.code).toBe('invalid_multipart');
      const form = await asUser(inputs().post('/v1/files')).type('form').send('purpose=batch&file=x');
      expect(form.status).toBe(400);
      expect(form.body.error.code).toBe('invalid_multipart');
    });

    it("answers a malformed JSON body with the host's parser error, in Nest's shape, before authentication", async () => {
      const res = await inputs().post('/v1/files').set('content-type', 'application/json').send('{"purpose":');
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ statusCode: 400, error: 'Bad Request', message: expect.any(String) });
    });
  });

  describe('background jobs', () => {
    it('schedules both instances side by side, each under its own names', () => {
      const names = schedulerRegistries(app).flat();
      expect(new Set(names).size).toBe(names.length);
      expect(names).toEqual(expect.arrayContaining(['inputs:expiry-sweep', 'archive:expiry-sweep', 'archive:reconcile']));
      expect(names).not.toContain('inputs:reconcile');
    });

    it('runs both expiry sweeps: each instance announces its own expired file', async () => {
      const input = await platform.inputs.createFile({ ownerId: 'sweepme', purpose: 'batch', filename: 'i', content: 'i' });
      const archived = await platform.archive.createFile({ ownerId: 'sweepme', purpose: 'batch', filename: 'a', content: 'a' });
      const expired: [string, string][] = [];
      const stops = [
        platform.inputs.on('file.expired', (e) => void expired.push(['inputs', e.fileId])),
        platform.archive.on('file.expired', (e) => void expired.push(['archive', e.fileId])),
      ];
      try {
        await expireNow(inputsPool, input.id);
        await expireNow(archivePool, archived.id);
        await eventually(() => expired.length >= 2, 10_000);
        expect(expired.sort()).toEqual([
          ['archive', archived.id],
          ['inputs', input.id],
        ]);
      } finally {
        stops.forEach((stop) => stop());
      }
      await eventually(async () => !(await walk(archiveDir)).includes(storageKeyFor(archived.id)), 5_000);
      await eventually(async () => !(await listKeys(bucket.client, bucket.settings.bucket)).includes(storageKeyFor(input.id)), 5_000);
    });
  });

  describe('shutdown (last: closes the app)', () => {
    it('app.close() stops both schedules and releases both connection pools', async () => {
      await Promise.all([inputsPool.end(), archivePool.end()]);
      inputsPool = archivePool = undefined as unknown as Pool;
      const connections = () =>
        Promise.all([inputsDb.name, archiveDb.name].map((name) => connectionsTo(process.env.TEST_DATABASE_URL!, name)));
      expect((await connections()).every((n) => n >= 1)).toBe(true);
      await app.close();
      expect(schedulerRegistries(app).flat()).toEqual([]);
      await eventually(async () => (await connections()).every((n) => n === 0));
    });
  });
});

describe('A FilesModule instance with routes: false and jobs: false', () => {
  let db: TestDatabase;
  let dir: string;
  let app: NestExpressApplication;
  let origin: string;
  let files: FilesService;

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = await mkdtemp(path.join(tmpdir(), 'files-api-quiet-'));
    @Module({
      imports: [
        FilesModule.forRoot({
          routes: false,
          jobs: false,
          database: { url: db.url, poolMax: 2 },
          storage: { driver: 'fs', dir },
          // Short intervals that must not be scheduled.
          expiry: { sweepIntervalSeconds: 1 },
          reconcile: { intervalSeconds: 1 },
        }),
      ],
    })
    class QuietHost {}
    const moduleRef = await Test.createTestingModule({ imports: [QuietHost] }).compile();
    app = moduleRef.createNestApplication<NestExpressApplication>({ logger: false });
    origin = await listen(app);
    files = app.get(FilesService);
  });

  afterAll(async () => {
    await app?.close();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.each(['/v1/files', '/v1/openai/files', '/v1/files/file_01kb3c0000000000000000000'])(
    "serves no route: GET %s is the host's plain Nest 404 (no Files error shape, no auth)",
    async (url) => {
      const res = await request(origin).get(url).set('authorization', 'Bearer sk-anything');
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ statusCode: 404, error: 'Not Found', message: `Cannot GET ${url}` });
    },
  );

  it('schedules nothing', () => {
    expect(schedulerRegistries(app).flat()).toEqual([]);
  });

  it('still serves host code through FilesService', async () => {
    const file = await files.createFile({ ownerId: 'worker', purpose: 'batch-output', filename: 'o.jsonl', content: 'done\n' });
    expect((await walk(dir)).includes(storageKeyFor(file.id))).toBe(true);
    await expect(files.list('worker')).resolves.toMatchObject({ data: [file] });
  });
});
