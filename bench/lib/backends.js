'use strict';
// The benchmark's backends: the same PostgreSQL and S3 server the tests use, given by
// TEST_DATABASE_URL (a role that may CREATE DATABASE) and TEST_S3_ENDPOINT, TEST_S3_ACCESS_KEY_ID,
// TEST_S3_SECRET_ACCESS_KEY (optional TEST_S3_REGION). Every benchmark gets a fresh database
// (migrated with the service's own migrator) and a fresh bucket, both removed afterwards.
const { createHash, randomBytes } = require('node:crypto');
const { Agent } = require('node:http');
const { Client } = require('pg');
const {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} = require('@aws-sdk/client-s3');
const { defer } = require('./cleanup');

const MiB = 1024 * 1024;

function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is required: the benchmarks use the test backends (TEST_DATABASE_URL, TEST_S3_ENDPOINT, ` +
        'TEST_S3_ACCESS_KEY_ID, TEST_S3_SECRET_ACCESS_KEY); see docs/benchmarks.md',
    );
  }
  return value;
}

function s3Settings() {
  return {
    endpoint: requireEnv('TEST_S3_ENDPOINT'),
    region: process.env.TEST_S3_REGION || 'us-east-1',
    accessKeyId: requireEnv('TEST_S3_ACCESS_KEY_ID'),
    secretAccessKey: requireEnv('TEST_S3_SECRET_ACCESS_KEY'),
  };
}

/**
 * An S3 client configured like the service's own (S3FileStorage): path style, no streamed
 * checksums, no Expect: 100-continue, a keep-alive agent instance. Used for the direct baselines,
 * so both sides talk to S3 alike.
 */
function createS3Client(options = {}) {
  const s = s3Settings();
  const client = new S3Client({
    endpoint: s.endpoint,
    region: s.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
    expectContinueHeader: false,
    requestHandler: {
      connectionTimeout: 5000,
      socketTimeout: 30000,
      httpAgent: options.httpAgent ?? new Agent({ keepAlive: true, maxSockets: 256 }),
    },
  });
  // Swift's s3api (like AWS) wants Content-MD5 on DeleteObjects; the SDK only adds a CRC.
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === 'DeleteObjectsCommand' && args.request?.body && !args.request.headers['content-md5']) {
        args.request.headers['content-md5'] = createHash('md5').update(args.request.body).digest('base64');
      }
      return next(args);
    },
    { step: 'finalizeRequest', name: 'benchContentMd5' },
  );
  return client;
}

async function sql(url, statement) {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(statement);
  } finally {
    await client.end();
  }
}

function withDatabase(url, name) {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A fresh, migrated database; dropped by the cleanup registry (also on failure or Ctrl-C). */
async function createDatabase(label) {
  const admin = requireEnv('TEST_DATABASE_URL');
  const name = `files_api_bench_${label.replace(/[^a-z0-9]/g, '_')}_${randomBytes(3).toString('hex')}`;
  await sql(admin, `CREATE DATABASE ${name}`);
  const drop = defer(`database ${name}`, () => sql(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  const url = withDatabase(admin, name);
  const { fromDist, ROOT } = require('./dist');
  await fromDist('database/migrator').migrate(url, { dir: require('node:path').join(ROOT, 'prisma/migrations') });
  return { name, url, drop };
}

/** A fresh bucket; emptied (objects and open multipart uploads) and removed by the cleanup registry. */
async function createBucket(label) {
  const s = s3Settings();
  const bucket = `files-api-bench-${label.replace(/[^a-z0-9]/g, '-')}-${randomBytes(3).toString('hex')}`;
  const client = createS3Client();
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  const drop = defer(`bucket ${bucket}`, async () => {
    try {
      // Swift updates container listings asynchronously: right after many writes or deletes the
      // bucket may still look non-empty (409 BucketNotEmpty). Empty it again and retry a while.
      for (let attempt = 1; ; attempt++) {
        await emptyBucket(client, bucket);
        try {
          await client.send(new DeleteBucketCommand({ Bucket: bucket }));
          return;
        } catch (error) {
          if (attempt >= 30 || (error.name !== 'BucketNotEmpty' && error.$metadata?.httpStatusCode !== 409)) throw error;
          await new Promise((resolve) => setTimeout(resolve, 2000));
        }
      }
    } finally {
      client.destroy();
    }
  });
  return {
    bucket,
    client,
    drop,
    env: {
      STORAGE_DRIVER: 's3',
      S3_ENDPOINT: s.endpoint,
      S3_REGION: s.region,
      S3_BUCKET: bucket,
      S3_ACCESS_KEY_ID: s.accessKeyId,
      S3_SECRET_ACCESS_KEY: s.secretAccessKey,
      S3_FORCE_PATH_STYLE: 'true',
    },
  };
}

async function emptyBucket(client, bucket) {
  for (;;) {
    const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    const uploads = page.Uploads ?? [];
    for (const u of uploads) {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
    }
    if (!page.IsTruncated || uploads.length === 0) break;
  }
  for (;;) {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1000 }));
    const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key }));
    if (keys.length === 0) break;
    await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
  }
}

module.exports = { MiB, requireEnv, createS3Client, createDatabase, createBucket, sql };
