// Runs the built `cyb` command as a user's shell would, for the receiver and signal tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import { dynamicTracesSchema } from '@cyb/core';
import { REPO_ROOT } from './services.js';
import { waitUntil } from './helpers.js';

export const CYB_BIN = path.join(REPO_ROOT, 'packages', 'cli', 'dist', 'src', 'bin.js');
export const FIXTURES = path.join(REPO_ROOT, 'reliability', 'dist', 'test', 'fixtures');

export interface CybRun {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  /** Resolves with the exit code (or 128 + signal number's name when killed) once the process closed. */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The receiver's URL, once `cyb trace` has printed it. */
  url: () => Promise<string>;
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Its own process group, so a signal can go to the whole group as a terminal's Ctrl-C does. */
  group?: boolean;
  timeoutMs?: number;
}

export function startCyb(args: readonly string[], options: StartOptions = {}): CybRun {
  const { env = {}, cwd = REPO_ROOT, group = false, timeoutMs = 30_000 } = options;
  const child = spawn(process.execPath, [CYB_BIN, ...args], {
    cwd,
    detached: group,
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (t: string) => (out += t));
  child.stderr!.setEncoding('utf8').on('data', (t: string) => (err += t));
  const killer = setTimeout(() => {
    if (group && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    else child.kill('SIGKILL');
  }, timeoutMs);
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal });
    });
  });
  const url = async (): Promise<string> => {
    await waitUntil(() => /receiving OTLP on (\S+)/.test(err) || child.exitCode !== null, 'cyb trace to print its receiver URL', 15_000);
    const m = /receiving OTLP on (\S+)/.exec(err);
    if (!m) throw new Error(`cyb trace printed no URL: ${err}`);
    return m[1]!;
  };
  return { child, stderr: () => err, stdout: () => out, done, url };
}

const dirs: string[] = [];
process.once('exit', () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh directory, removed when the test process ends. */
export function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'cyb-reliability-'));
  dirs.push(dir);
  return dir;
}

const ajv = new Ajv({ strict: false, allErrors: true });
const validateDynamic = ajv.compile(dynamicTracesSchema);

/** Undefined when `doc` is a valid dynamic-traces.json, else ajv's complaint. */
export function dynamicTracesErrors(doc: unknown): string | undefined {
  return validateDynamic(doc) ? undefined : ajv.errorsText(validateDynamic.errors);
}
