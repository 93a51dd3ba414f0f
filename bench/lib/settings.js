'use strict';
// Benchmark sizes and repetitions (env overrides), and the S3 upload settings both sides use.
const { MiB } = require('./backends');

function num(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}

/**
 * Multipart part size and queue size: the service's defaults (src/config/app-config.ts), or
 * S3_UPLOAD_PART_SIZE_BYTES / S3_UPLOAD_QUEUE_SIZE from the benchmark's environment. The same
 * values go to the service and to the direct lib-storage baseline.
 */
function uploadSettings() {
  const { CONFIG_DEFAULTS } = require('./dist').fromDist('config/app-config');
  return {
    partSize: num('S3_UPLOAD_PART_SIZE_BYTES', Number(CONFIG_DEFAULTS.S3_UPLOAD_PART_SIZE_BYTES)),
    queueSize: num('S3_UPLOAD_QUEUE_SIZE', Number(CONFIG_DEFAULTS.S3_UPLOAD_QUEUE_SIZE)),
  };
}

function uploadEnv() {
  const { partSize, queueSize } = uploadSettings();
  return { S3_UPLOAD_PART_SIZE_BYTES: String(partSize), S3_UPLOAD_QUEUE_SIZE: String(queueSize) };
}

module.exports = { num, MiB, uploadSettings, uploadEnv };
