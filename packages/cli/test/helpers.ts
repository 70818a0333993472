import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { archeologyResultsSchema, dynamicTracesSchema } from '@cyb/core';

export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = path.join(PACKAGE_ROOT, 'dist', 'src', 'bin.js');
export const FIXTURES = path.join(PACKAGE_ROOT, 'test', 'fixtures');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Starts the built `cyb` as a subprocess, as a user's shell would. */
export function startCyb(args: readonly string[], options: RunOptions = {}): { child: ChildProcess; done: Promise<RunResult>; stderrText: () => string } {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd ?? PACKAGE_ROOT,
    env: { ...process.env, NO_COLOR: '1', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (t: string) => (stdout += t));
  child.stderr!.setEncoding('utf8').on('data', (t: string) => (stderr += t));
  const timeout = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  const done = new Promise<RunResult>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timeout);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done, stderrText: () => stderr };
}

export function runCyb(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return startCyb(args, options).done;
}

const tempDirs: string[] = [];
process.once('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh directory, removed when the test process ends. */
export function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'cyb-cli-test-'));
  tempDirs.push(dir);
  return dir;
}

export function readJson<T = unknown>(file: string): T {
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

const ajv = new Ajv({ strict: false, allErrors: true });
const dynamicValidator = ajv.compile(dynamicTracesSchema);
const archeologyValidator = ajv.compile(archeologyResultsSchema);

/** Throws with ajv's messages when `doc` is not a valid dynamic-traces.json. */
export function assertDynamicTraces(doc: unknown): void {
  if (!dynamicValidator(doc)) throw new Error(`invalid dynamic-traces.json: ${ajv.errorsText(dynamicValidator.errors)}`);
}

export function assertArcheology(doc: unknown): void {
  if (!archeologyValidator(doc)) throw new Error(`invalid archeology-results.json: ${ajv.errorsText(archeologyValidator.errors)}`);
}

/** `module:function/arity`, the shared key as one string. */
export function fnId(key: { module: string; function: string; arity: number }): string {
  return `${key.module}:${key.function}/${key.arity}`;
}

export function edgeIds(edges: { from: { module: string; function: string; arity: number }; to: { module: string; function: string; arity: number } }[]): string[] {
  return edges.map((e) => `${fnId(e.from)} -> ${fnId(e.to)}`).sort();
}

/** Resolves when `predicate` holds for the text so far, polling; rejects after `ms`. */
export async function waitFor(predicate: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
