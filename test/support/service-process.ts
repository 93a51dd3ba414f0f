import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { freePort } from './fault-proxy';

const ROOT = path.resolve(__dirname, '../..');
const MAIN = path.join(ROOT, 'dist/main.js');
const AUDIT = path.join(ROOT, 'dist/cli/audit.js');
const CLI = path.join(ROOT, 'dist/cli/index.js');

export interface ServiceProcess {
  origin: string;
  pid: number;
  child: ChildProcess;
  /** Everything the process printed so far. */
  output(): string;
  /** Resolves with the exit code (or signal name) once the process is gone. */
  exited: Promise<number | string>;
  kill(signal: NodeJS.Signals): Promise<number | string>;
}

/**
 * The built service (`dist/main.js`, so `npm run build` must have run) as a real child process
 * with the given environment: what `npm start` runs, for crash, outage and multi-replica tests.
 */
export async function startServiceProcess(env: Record<string, string>, options: { port?: number } = {}): Promise<ServiceProcess> {
  const port = options.port ?? (await freePort());
  const child = spawn(process.execPath, [MAIN], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const service: ServiceProcess = {
    origin: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    child,
    output: () => output,
    exited,
    kill: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode} before ready:\n${output}`);
    try {
      const res = await fetch(`${service.origin}/healthz`);
      if (res.ok) return service;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await service.kill('SIGKILL');
  throw new Error(`service not ready within 20 s:\n${output}`);
}

/** Runs `dist/cli/audit.js --json [args]` with the environment; returns exit code and report. */
export async function runAudit(env: Record<string, string>, args: string[] = []): Promise<{ code: number; report: any; output: string }> {
  const { code, stdout, stderr } = await runScript(AUDIT, ['--json', ...args], env);
  let report: unknown;
  try {
    report = JSON.parse(stdout.slice(stdout.indexOf('{')));
  } catch {
    report = undefined;
  }
  return { code, report, output: stdout + stderr };
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `dist/cli/index.js [args]` (what `npm run cli -- args` runs) with exactly this environment. */
export function runCli(args: string[], env: Record<string, string>): Promise<CliRun> {
  return runScript(CLI, args, env);
}

/** Runs a built script with exactly this environment (plus PATH) until it exits. */
async function runScript(script: string, args: string[], env: Record<string, string>): Promise<CliRun> {
  const child = spawn(process.execPath, [script, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  // 'close', not 'exit': every byte of stdout and stderr has been read by then.
  const code = await new Promise<number>((resolve) => child.once('close', (c) => resolve(c ?? -1)));
  return { code, stdout, stderr };
}
