import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CollectedTrace, Collector, SpanRecord } from '@cyb/core';

export const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** packages/vsm, from dist/test/ where the compiled tests run. */
export const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The monorepo root: the directory whose package.json has `workspaces`. */
export const ROOT = resolve(PACKAGE_DIR, '..', '..');

/** A name unique to this package and run, for queues, exchanges and keys. */
export function uniqueName(what: string): string {
  return `cyb-vsm-${what}-${randomBytes(4).toString('hex')}`;
}

/**
 * Where a declaration really is: the 1-based line of the only line of `fixture` (a path under
 * test/fixtures, as TypeScript source) that contains `needle`, and its paths from the project root.
 */
export function declaration(fixture: string, needle: string): { file: string; module: string; line: number } {
  const path = join(PACKAGE_DIR, 'test', 'fixtures', fixture);
  const lines = readFileSync(path, 'utf8').split('\n');
  const hits = lines.flatMap((text, i) => (text.includes(needle) ? [i + 1] : []));
  if (hits.length !== 1) throw new Error(`expected one line with ${JSON.stringify(needle)} in ${fixture}, found ${hits.length}`);
  const file = relative(ROOT, path).split('\\').join('/');
  return { file, module: file.replace(/\.ts$/, ''), line: hits[0] as number };
}

/** Polls until `check` returns something, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function allSpans(collector: Collector): SpanRecord[] {
  return collector.traces().flatMap((t: CollectedTrace) => t.spans);
}

export function spanNamed(spans: readonly SpanRecord[], name: string): SpanRecord {
  const found = spans.filter((s) => s.name === name);
  if (found.length !== 1) throw new Error(`expected one span named ${name}, found ${found.length}: ${spans.map((s) => s.name).join(', ')}`);
  return found[0] as SpanRecord;
}
