import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

/** The repository (the package's root). */
export const ROOT = path.resolve(__dirname, '../..');
/** The repository's own TypeScript compiler. */
export const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (killed after `timeoutMs`); never throws on a non-zero exit. */
export function runCommand(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** What `npm pack` produced. */
export interface PackedPackage {
  /** Absolute path of the .tgz. */
  tarball: string;
  /** Paths inside the package, as `npm pack --json` lists them. */
  files: string[];
}

/**
 * `npm pack` of the repository into `destination`. Packs what is built: `npm test` runs
 * `npm run build` first; run it yourself before running this tier alone.
 */
export async function packPackage(destination: string): Promise<PackedPackage> {
  for (const built of ['dist/index.js', 'dist/index.d.ts']) {
    if (!existsSync(path.join(ROOT, built))) throw new Error(`${built} is missing: run \`npm run build\` before the package tests`);
  }
  const result = await runCommand('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', destination], { cwd: ROOT });
  if (result.code !== 0) throw new Error(`npm pack failed (${result.code}):\n${result.stderr}`);
  const [packed] = JSON.parse(result.stdout) as { filename: string; files: { path: string }[] }[];
  return { tarball: path.join(destination, packed.filename), files: packed.files.map((f) => f.path) };
}

export interface HostApp {
  /** The host's directory (its package.json, node_modules, sources). */
  dir: string;
  /** Seconds `npm install` took. */
  installSeconds: number;
}

/**
 * A throwaway host application in `dir`: its own package.json depending on the packed tarball and
 * on Nest (the versions this repository uses, so npm's cache has them), installed as a host would.
 */
export async function createHostApp(
  dir: string,
  tarball: string,
  files: Record<string, string>,
  options: { devDependencies?: string[] } = {},
): Promise<HostApp> {
  const own = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  const pick = (from: Record<string, string>, names: string[]) => Object.fromEntries(names.map((name) => [name, from[name]]));
  const manifest = {
    name: 'throwaway-files-api-host',
    version: '0.0.0',
    private: true,
    dependencies: {
      'files-api': `file:${tarball}`,
      ...pick(own.dependencies, ['@nestjs/common', '@nestjs/core', '@nestjs/platform-express', 'reflect-metadata', 'rxjs']),
    },
    devDependencies: pick(own.devDependencies, ['@types/node', ...(options.devDependencies ?? [])]),
  };
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'package.json'), JSON.stringify(manifest, null, 2));
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
  const started = Date.now();
  const install = await runCommand('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], {
    cwd: dir,
    timeoutMs: 180_000,
  });
  if (install.code !== 0) throw new Error(`npm install in the host failed (${install.code}):\n${install.stderr}`);
  return { dir, installSeconds: (Date.now() - started) / 1000 };
}

/** A temporary directory; `remove` deletes it with everything in it. */
export async function scratchDir(label: string): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), `files-api-${label}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
