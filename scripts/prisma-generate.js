#!/usr/bin/env node
// Runs `prisma generate` without network access. Prisma 7's CLI insists on resolving a
// schema-engine binary even though `generate` never executes it; pointing
// PRISMA_SCHEMA_ENGINE_BINARY at any existing file satisfies that check. A real binary set by
// the caller (e.g. on a machine with internet access) is left alone.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const env = { ...process.env };
if (!env.PRISMA_SCHEMA_ENGINE_BINARY) env.PRISMA_SCHEMA_ENGINE_BINARY = process.execPath;
env.PRISMA_HIDE_UPDATE_MESSAGE = '1';
env.CHECKPOINT_DISABLE = '1';

const cli = require.resolve('prisma/build/index.js');
const result = spawnSync(process.execPath, [cli, 'generate'], {
  cwd: path.resolve(__dirname, '..'),
  env,
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
