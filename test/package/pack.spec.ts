import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, realpath } from 'node:fs/promises';
import * as path from 'node:path';
import { createTestBucket, type TestBucket, type TestDatabase } from '../support/backends';
import { createEmptyDatabase } from '../support/empty-database';
import { createHostApp, packPackage, ROOT, runCommand, scratchDir, TSC, type HostApp, type PackedPackage } from '../support/packed-host';

/** A host as its authors would write it: only the package name, Nest, and its own code. */
const HOST_MAIN = `
import 'reflect-metadata';
import { Controller, Get, Module, Param, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { AddressInfo } from 'node:net';
import { FilesModule, FilesService, migrate, type FileObject, type FilesModuleSettings, type OwnerUsage } from 'files-api';

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(name + ' is not set');
  return value;
}

const settings: FilesModuleSettings = {
  database: { url: env('DATABASE_URL'), poolMax: 2 },
  storage: {
    driver: 's3',
    endpoint: env('S3_ENDPOINT'),
    region: 'us-east-1',
    bucket: env('S3_BUCKET'),
    accessKeyId: env('S3_ACCESS_KEY_ID'),
    secretAccessKey: env('S3_SECRET_ACCESS_KEY'),
    forcePathStyle: true,
    connectTimeoutMs: 5000,
    requestTimeoutMs: 30000,
    partSizeBytes: 5 * 1024 * 1024,
    queueSize: 2,
  },
  // The host's own authentication: its gateway names the tenant.
  ownerResolver: (request) => {
    const tenant = request.headers['x-tenant'];
    return typeof tenant === 'string' ? 'tenant-' + tenant : null;
  },
  jobs: false,
};

// The declarations are real types, not any: these must not compile.
// @ts-expect-error a host cannot write a fine-tune file
const notAPurpose: Parameters<FilesService['createFile']>[0]['purpose'] = 'fine-tune';
// @ts-expect-error database.url is required
const noDatabaseUrl: FilesModuleSettings = { database: {}, storage: settings.storage };
void notAPurpose;
void noDatabaseUrl;

@Controller('host/tenants/:tenant')
class HostController {
  constructor(private readonly files: FilesService) {}

  @Post('outputs')
  writeOutput(@Param('tenant') tenant: string): Promise<FileObject> {
    return this.files.createFile({
      ownerId: 'tenant-' + tenant,
      purpose: 'batch-output',
      filename: 'results.jsonl',
      content: '{"custom_id":"1","response":{"status_code":200}}\\n',
      bypassQuota: true,
    });
  }

  @Get('usage')
  usage(@Param('tenant') tenant: string): Promise<OwnerUsage> {
    return this.files.usage('tenant-' + tenant);
  }
}

@Module({ imports: [FilesModule.forRoot(settings)], controllers: [HostController] })
class HostModule {}

async function main(): Promise<void> {
  const { applied } = await migrate(env('DATABASE_URL'));
  const app = await NestFactory.create(HostModule, { logger: ['error', 'warn'] });
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  console.log(JSON.stringify({ port, applied }));
  process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
`;

const HOST_TSCONFIG = JSON.stringify({
  compilerOptions: {
    module: 'nodenext',
    moduleResolution: 'nodenext',
    target: 'ES2022',
    strict: true,
    experimentalDecorators: true,
    emitDecoratorMetadata: true,
    // What `nest new` generates; HOST_LIBCHECK_TSCONFIG checks the package's own .d.ts too.
    skipLibCheck: true,
    types: ['node'],
    rootDir: 'src',
    outDir: 'dist',
  },
  include: ['src'],
});

/**
 * The same host checked the way a strict host checks libraries (`skipLibCheck: false`) with only
 * the types a Nest-on-Express host has (@types/node; @types/express comes with the package): no
 * public declaration may need a type package that is only a devDependency of files-api.
 */
const HOST_LIBCHECK_TSCONFIG = JSON.stringify({
  extends: './tsconfig.json',
  compilerOptions: { skipLibCheck: false, noEmit: true },
});

describe('the npm package: `npm pack`, installed into a throwaway host app', () => {
  let scratch: Awaited<ReturnType<typeof scratchDir>>;
  let packed: PackedPackage;
  let host: HostApp;
  let db: TestDatabase;
  let bucket: TestBucket;
  let server: ChildProcess | undefined;

  beforeAll(async () => {
    scratch = await scratchDir('package');
    [db, bucket, packed] = await Promise.all([createEmptyDatabase(), createTestBucket(), packPackage(scratch.dir)]);
    host = await createHostApp(
      path.join(scratch.dir, 'host'),
      packed.tarball,
      { 'src/main.ts': HOST_MAIN, 'tsconfig.json': HOST_TSCONFIG, 'tsconfig.libcheck.json': HOST_LIBCHECK_TSCONFIG },
    );
  });
  afterAll(async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((resolve) => server!.once('exit', resolve));
      server.kill('SIGTERM');
      await exited;
    }
    await db?.drop();
    await bucket?.drop();
    await scratch?.remove();
  });

  it('holds the built JavaScript, its declarations and the migrations, and no sources or tests', async () => {
    const files = packed.files;
    const migrations = (await readdir(path.join(ROOT, 'prisma/migrations'), { withFileTypes: true }))
      .filter((entry) => entry.isDirectory())
      .map((entry) => `prisma/migrations/${entry.name}/migration.sql`);
    expect(migrations.length).toBeGreaterThan(0);
    expect(files).toEqual(
      expect.arrayContaining(['package.json', 'dist/index.js', 'dist/index.d.ts', 'prisma/migrations/migration_lock.toml', ...migrations]),
    );
    const unexpected = files.filter(
      (file) => !/^(package\.json|README\.md|prisma\/schema\.prisma|prisma\/migrations\/.+|dist\/.+(\.d\.ts|\.js))$/.test(file),
    );
    expect(unexpected).toEqual([]);
    expect(files.filter((file) => /(^|\/)(test|src|examples|bench)\//.test(file) && !file.startsWith('dist/'))).toEqual([]);
    expect(files.filter((file) => /\.spec\.|\.map$/.test(file) || (file.endsWith('.ts') && !file.endsWith('.d.ts')))).toEqual([]);

    // What is in the tarball itself, not only what npm says it put there.
    const listing = await runCommand('tar', ['-tzf', packed.tarball], { cwd: scratch.dir });
    expect(listing.code).toBe(0);
    const entries = listing.stdout.split('\n').filter(Boolean).map((entry) => entry.replace(/^package\//, ''));
    expect([...entries].sort()).toEqual([...files].sort());
  });

  it('installs as a copy of its own that Node resolves by the package name, with one shared Nest', async () => {
    const script = `
      const resolve = (name, from) => { try { return require.resolve(name, { paths: [from] }); } catch (e) { return e.code; } };
      const pkg = require.resolve('files-api/package.json');
      const pkgDir = require('path').dirname(pkg);
      console.log(JSON.stringify({
        pkg,
        main: require.resolve('files-api'),
        deep: resolve('files-api/dist/files/files.module', process.cwd()),
        nestForHost: require.resolve('@nestjs/core'),
        nestForPackage: resolve('@nestjs/core', pkgDir),
        version: require('files-api/package.json').version,
      }));`;
    const result = await runCommand(process.execPath, ['-e', script], { cwd: host.dir });
    expect(result.stderr).toBe('');
    const resolved = JSON.parse(result.stdout);
    const installed = path.join(await realpath(host.dir), 'node_modules/files-api');
    expect(await realpath(resolved.pkg)).toBe(path.join(installed, 'package.json'));
    expect(await realpath(resolved.main)).toBe(path.join(installed, 'dist/index.js'));
    // Only the exported entry points: internals are not part of the API.
    expect(resolved.deep).toBe('ERR_PACKAGE_PATH_NOT_EXPORTED');
    // Nest is a peer: the package uses the host's copy, so DI tokens and decorators are shared.
    expect(resolved.nestForPackage).toBe(resolved.nestForHost);
    expect(resolved.version).toBe(require(path.join(ROOT, 'package.json')).version);
  });

  it("type-checks and compiles the host against the installed package's declarations", async () => {
    const result = await runCommand(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: host.dir });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('has declarations that type-check with skipLibCheck: false and no type packages of its own devDependencies', async () => {
    const result = await runCommand(process.execPath, [TSC, '-p', 'tsconfig.libcheck.json'], { cwd: host.dir });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('runs the host: migrates a fresh database, serves the Files API routes and answers host code calling FilesService', async () => {
    const started = await startHost(host.dir, {
      DATABASE_URL: db.url,
      S3_ENDPOINT: bucket.settings.endpoint!,
      S3_BUCKET: bucket.settings.bucket,
      S3_ACCESS_KEY_ID: bucket.settings.accessKeyId ?? '',
      S3_SECRET_ACCESS_KEY: bucket.settings.secretAccessKey ?? '',
    });
    server = started.child;
    const migrations = (await readdir(path.join(ROOT, 'prisma/migrations'), { withFileTypes: true }))
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name)
      .sort();
    expect(started.applied).toEqual(migrations);

    const origin = `http://127.0.0.1:${started.port}`;
    const as = (tenant: string) => ({ 'x-tenant': tenant });
    const content = '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{}}\n';
    const form = new FormData();
    form.append('purpose', 'batch');
    form.append('file', new Blob([content]), 'input.jsonl');
    const upload = await fetch(`${origin}/v1/files`, { method: 'POST', headers: as('acme'), body: form });
    expect(upload.status).toBe(200);
    const input = await body(upload);
    expect(input).toMatchObject({ object: 'file', purpose: 'batch', bytes: Buffer.byteLength(content), filename: 'input.jsonl' });

    const listed = await body(await fetch(`${origin}/v1/openai/files`, { headers: as('acme') }));
    expect(listed.data.map((f: { id: string }) => f.id)).toEqual([input.id]);
    const download = await fetch(`${origin}/v1/files/${input.id}/content`, { headers: as('acme') });
    expect(download.status).toBe(200);
    expect(await download.text()).toBe(content);

    const written = await fetch(`${origin}/host/tenants/acme/outputs`, { method: 'POST' });
    expect(written.status).toBe(201);
    const output = await body(written);
    expect(output).toMatchObject({ object: 'file', purpose: 'batch-output', filename: 'results.jsonl' });
    const outputs = await body(await fetch(`${origin}/v1/files?purpose=batch-output`, { headers: as('acme') }));
    expect(outputs.data.map((f: { id: string }) => f.id)).toEqual([output.id]);
    const usage = await body(await fetch(`${origin}/host/tenants/acme/usage`));
    expect(usage.usedBytes).toBe(input.bytes + output.bytes);

    // The host's resolver decides: no tenant is 401 in OpenAI's shape, another tenant sees nothing.
    const anonymous = await fetch(`${origin}/v1/files`);
    expect(anonymous.status).toBe(401);
    expect((await body(anonymous)).error.code).toBe('invalid_api_key');
    expect((await fetch(`${origin}/v1/files/${output.id}`, { headers: as('globex') })).status).toBe(404);
  });
});

/** A JSON response body, as the test reads it. */
async function body(response: Response): Promise<any> {
  return response.json();
}

/** Starts the compiled host and waits for the line it prints once listening. */
async function startHost(dir: string, env: Record<string, string>): Promise<{ child: ChildProcess; port: number; applied: string[] }> {
  const child = spawn(process.execPath, ['dist/main.js'], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the host did not start within 30 s:\n${stdout}\n${stderr}`));
    }, 30_000);
    child.stdout!.on('data', (d) => {
      stdout += d;
      const line = stdout.split('\n').find((l) => l.startsWith('{"port"'));
      if (line === undefined) return;
      clearTimeout(timer);
      resolve({ child, ...JSON.parse(line) });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the host exited with ${code}:\n${stdout}\n${stderr}`));
    });
  });
}
