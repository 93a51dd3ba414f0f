import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { CONFIG_DEFAULTS, loadConfig } from '../../src/config/app-config';

/**
 * docker-compose.yml and the Dockerfile cannot be run here (no container engine), so this checks
 * what would otherwise only fail at `docker compose up`: every variable handed to the service is
 * one it reads (a typo would be silently ignored and the default used), the app's environment
 * passes the same validation as at boot, and the services agree on bucket, credentials and ports.
 */

const ROOT = path.resolve(__dirname, '../..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

type Env = Record<string, string>;
interface Service {
  image?: string;
  build?: unknown;
  command?: string[] | string;
  environment?: Record<string, string | number | boolean | null> | string[];
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test: string[] | string };
  ports?: string[];
}
interface ComposeFile {
  services: Record<string, Service>;
}

/**
 * Compose's variable interpolation, resolved against `env` (empty: a fresh checkout without an
 * .env file must come up). `${X:-d}`/`${X-d}` take the default, `$$` is a literal `$`; a variable
 * with neither a value nor a default is an error here, because compose would substitute ''.
 */
function interpolate(value: string, env: Env): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (match, braced?: string, op?: string, fallback?: string, bare?: string) => {
      if (match === '$$') return '$';
      const name = (braced ?? bare)!;
      const set = env[name];
      if (set !== undefined && !(op === ':-' && set === '')) return set;
      if (op !== undefined) return fallback ?? '';
      throw new Error(`\${${name}} has no value and no default`);
    },
  );
}

function environmentOf(service: Service, env: Env = {}): Env {
  const raw = service.environment ?? {};
  const entries: [string, string][] = Array.isArray(raw)
    ? raw.map((item) => {
        const eq = item.indexOf('=');
        return eq < 0 ? [item, ''] : [item.slice(0, eq), item.slice(eq + 1)];
      })
    : Object.entries(raw).map(([key, value]) => [key, value === null ? '' : String(value)]);
  return Object.fromEntries(entries.map(([key, value]) => [key, interpolate(value, env)]));
}

/** Variables a service is given that the config does not read (typos, stale names). */
function unknownVariables(service: Service): string[] {
  return Object.keys(environmentOf(service)).filter((name) => !Object.hasOwn(CONFIG_DEFAULTS, name));
}

function dependsOn(service: Service): Record<string, string> {
  const raw = service.depends_on ?? {};
  if (Array.isArray(raw)) return Object.fromEntries(raw.map((name) => [name, 'service_started']));
  return Object.fromEntries(Object.entries(raw).map(([name, { condition }]) => [name, condition]));
}

const compose = parse(read('docker-compose.yml')) as ComposeFile;
const { app, migrate, minio, postgres } = compose.services;
const bucketJob = compose.services['create-bucket'];

describe('docker-compose.yml', () => {
  it('declares the services of the stack', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['app', 'create-bucket', 'migrate', 'minio', 'postgres']);
  });

  it('gives app and migrate only variables the config knows', () => {
    expect(unknownVariables(app)).toEqual([]);
    expect(unknownVariables(migrate)).toEqual([]);
  });

  it('would catch a misspelt variable', () => {
    const typo: Service = { environment: { ...environmentOf(app), S3_FORCE_PATHSTYLE: 'true' } };
    expect(unknownVariables(typo)).toEqual(['S3_FORCE_PATHSTYLE']);
    expect(unknownVariables({ environment: ['DATABASE_URL=postgres://x', 'API_KEY=sk-1234567890:a'] })).toEqual([
      'API_KEY',
    ]);
  });

  it("starts the app on a configuration loadConfig accepts, with S3 on MinIO", () => {
    const config = loadConfig(environmentOf(app));
    expect(config.storage).toMatchObject({
      driver: 's3',
      endpoint: 'http://minio:9000',
      forcePathStyle: true,
    });
    expect(config.apiKeys.size).toBeGreaterThan(0);
    expect(new URL(config.database.url).hostname).toBe('postgres');
  });

  it('also accepts the variables an operator overrides', () => {
    const env = { API_KEYS: 'sk-operator-key-123:ops', POSTGRES_PASSWORD: 'pw', MINIO_ROOT_USER: 'u', MINIO_ROOT_PASSWORD: 'p' };
    const config = loadConfig(environmentOf(app, env));
    expect([...config.apiKeys]).toEqual([['sk-operator-key-123', 'ops']]);
    expect(config.database.url).toContain('files:pw@postgres');
    expect(config.storage).toMatchObject({ accessKeyId: 'u', secretAccessKey: 'p' });
  });

  it('migrates the same database the app uses, before the app starts', () => {
    expect(environmentOf(migrate).DATABASE_URL).toBe(environmentOf(app).DATABASE_URL);
    expect([migrate.command].flat().join(' ')).toContain('db:migrate');
    expect(JSON.parse(read('package.json')).scripts['db:migrate']).toBeDefined();
    expect(dependsOn(migrate)).toEqual({ postgres: 'service_healthy' });
    expect(dependsOn(app)).toMatchObject({
      migrate: 'service_completed_successfully',
      'create-bucket': 'service_completed_successfully',
    });
    expect(migrate.image).toBe(app.image);
  });

  it('creates the bucket the app writes to, with the credentials the app uses', () => {
    const appEnv = environmentOf(app);
    const minioEnv = environmentOf(minio);
    expect([bucketJob.command].flat().join(' ')).toMatch(new RegExp(`\\s\\w+/${appEnv.S3_BUCKET}$`));
    expect(dependsOn(bucketJob)).toEqual({ minio: 'service_healthy' });
    const alias = Object.entries(environmentOf(bucketJob)).find(([name]) => name.startsWith('MC_HOST_'));
    expect(alias).toBeDefined();
    const target = new URL(alias![1]);
    expect(target.origin).toBe(appEnv.S3_ENDPOINT);
    expect([target.username, target.password]).toEqual([minioEnv.MINIO_ROOT_USER, minioEnv.MINIO_ROOT_PASSWORD]);
    expect([appEnv.S3_ACCESS_KEY_ID, appEnv.S3_SECRET_ACCESS_KEY]).toEqual([minioEnv.MINIO_ROOT_USER, minioEnv.MINIO_ROOT_PASSWORD]);
  });

  it('health-checks the backends and the app on the port it listens on', () => {
    expect([postgres.healthcheck?.test].flat().join(' ')).toContain('pg_isready');
    expect(minio.healthcheck).toBeDefined();
    const port = loadConfig(environmentOf(app)).port;
    expect([app.healthcheck?.test].flat().join(' ')).toContain(`127.0.0.1:${port}/readyz`);
    expect(app.ports?.map((mapping) => interpolate(mapping, {}))).toEqual([`3000:${port}`]);
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const ignored = read('.dockerignore')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));

  it('copies from the build context only files that exist and .dockerignore keeps', () => {
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1].trim().split(/\s+/));
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect({ source, exists: existsSync(path.join(ROOT, source)) }).toEqual({ source, exists: true });
      const excludedBy = ignored.filter((pattern) => source === pattern || source.startsWith(`${pattern}/`));
      expect({ source, excludedBy }).toEqual({ source, excludedBy: [] });
    }
  });

  it('runs the built app as a non-root user, with the migrations beside dist/', () => {
    expect(dockerfile).toMatch(/^USER (?!root)\S+$/m);
    expect(dockerfile).toMatch(/^CMD \["node", ?"dist\/main\.js"\]$/m);
    expect(dockerfile).toMatch(/^COPY prisma\/migrations \.\/prisma\/migrations$/m);
  });
});
