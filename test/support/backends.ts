import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import type { StorageConfig } from '../../src/config/app-config';
import { databaseUrl, ENV } from './env';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A fresh, migrated database cloned from the run's template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const template = process.env[ENV.template];
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (!template || !adminUrl) throw new Error('backends not set up: run this test through jest (global setup)');
  const name = `${template.replace('_tpl_', '_t_')}_${randomBytes(4).toString('hex')}`;
  await withAdmin((admin) => admin.query(`CREATE DATABASE ${name} TEMPLATE ${template}`));
  return {
    url: databaseUrl(adminUrl, name),
    name,
    drop: () => withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

async function withAdmin<T>(work: (admin: Client) => Promise<T>): Promise<T> {
  const admin = new Client({ connectionString: process.env.TEST_DATABASE_URL });
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.end();
  }
}

export type S3Settings = Extract<StorageConfig, { driver: 's3' }>;

export interface TestBucket {
  settings: S3Settings;
  /** The same settings as environment variables, for a service started as a child process. */
  env: Record<string, string>;
  client: S3Client;
  drop(): Promise<void>;
}

/** A new, empty bucket on the run's S3 server; `drop` empties and removes it. */
export async function createTestBucket(): Promise<TestBucket> {
  const endpoint = process.env.TEST_S3_ENDPOINT;
  if (!endpoint) throw new Error('backends not set up: run this test through jest (global setup)');
  const settings: S3Settings = {
    driver: 's3',
    endpoint,
    region: process.env.TEST_S3_REGION || 'us-east-1',
    bucket: `files-api-test-${randomBytes(5).toString('hex')}`,
    accessKeyId: process.env.TEST_S3_ACCESS_KEY_ID,
    secretAccessKey: process.env.TEST_S3_SECRET_ACCESS_KEY,
    forcePathStyle: true,
    connectTimeoutMs: 5000,
    requestTimeoutMs: 30000,
    partSizeBytes: 5 * 1024 * 1024,
    queueSize: 2,
  };
  const client = new S3Client({
    endpoint,
    region: settings.region,
    forcePathStyle: true,
    credentials: { accessKeyId: settings.accessKeyId ?? '', secretAccessKey: settings.secretAccessKey ?? '' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  await client.send(new CreateBucketCommand({ Bucket: settings.bucket }));
  return {
    settings,
    env: {
      STORAGE_DRIVER: 's3',
      S3_ENDPOINT: endpoint,
      S3_REGION: settings.region,
      S3_BUCKET: settings.bucket,
      S3_ACCESS_KEY_ID: settings.accessKeyId ?? '',
      S3_SECRET_ACCESS_KEY: settings.secretAccessKey ?? '',
      S3_FORCE_PATH_STYLE: 'true',
    },
    client,
    drop: async () => {
      await emptyBucket(client, settings.bucket);
      await client.send(new DeleteBucketCommand({ Bucket: settings.bucket }));
      client.destroy();
    },
  };
}

/** Every object key in the bucket (for assertions about what storage holds). */
export async function listKeys(client: S3Client, bucket: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const item of page.Contents ?? []) if (item.Key) keys.push(item.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/** Open multipart uploads in the bucket. */
export async function listMultipartUploads(client: S3Client, bucket: string): Promise<{ key: string; uploadId: string }[]> {
  const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (page.Uploads ?? []).map((u) => ({ key: u.Key!, uploadId: u.UploadId! }));
}

async function emptyBucket(client: S3Client, bucket: string): Promise<void> {
  for (const upload of await listMultipartUploads(client, bucket)) {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.key, UploadId: upload.uploadId }));
  }
  for (const key of await listKeys(client, bucket)) {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  }
}
