// `cyb trace` stopped by SIGINT or SIGTERM at random moments, from before its receiver is up to the
// middle of a busy two-process run: the output is absent or a complete, schema-valid file, never a
// truncated one, and no temporary file is left. A traced child that crashes (process.abort, kill -9)
// loses only the spans it had not finished; everything else it and its siblings did is in the file.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { FIXTURES, dynamicTracesErrors, startCyb, tempDir, type CybRun } from './cyb.js';
import { sleep, waitUntil } from './helpers.js';

interface DynamicDoc {
  traces: { trace_id: string; span_count: number; spans: { name: string; trace_id: string; parent_span_id: string | null; metadata?: Record<string, unknown> }[] }[];
  summary: { trace_count: number; total_spans: number };
}

type Mode = 'SIGINT to cyb' | 'SIGTERM to cyb' | 'SIGINT to the group';
const MODES: Mode[] = ['SIGINT to cyb', 'SIGTERM to cyb', 'SIGINT to the group'];

/** Processes of group `pgid` still running (zombies, already dead and waiting to be reaped, do not count). */
function liveInGroup(pgid: number): number[] {
  const live: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // Ended meanwhile.
    }
    // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses, so read after the last ')'.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z') live.push(Number(entry));
  }
  return live;
}

function signal(run: CybRun, mode: Mode): void {
  const pid = run.child.pid!;
  try {
    if (mode === 'SIGINT to the group') process.kill(-pid, 'SIGINT');
    else run.child.kill(mode === 'SIGINT to cyb' ? 'SIGINT' : 'SIGTERM');
  } catch {
    // Already gone.
  }
}

describe('cyb trace stopped by a signal at a random moment', () => {
  it('writes a complete, schema-valid file or none, never a truncated one (10 runs, delays 0-2 s)', async (t) => {
    const runs = Array.from({ length: 10 }, (_, i) => ({ mode: MODES[i % MODES.length]!, delayMs: Math.floor(Math.random() * 2000), dir: tempDir() }));
    const results = await Promise.all(runs.map(async ({ mode, delayMs, dir }) => {
      const out = path.join(dir, 'dynamic-traces.json');
      const run = startCyb(['trace', '--grace', '1s', '-o', out, '--', process.execPath, path.join(FIXTURES, 'span-loop.js')], { group: true, cwd: dir });
      await sleep(delayMs);
      signal(run, mode);
      const exit = await run.done;
      // Nothing of the run may outlive it: the forked child stops when its parent is gone.
      let outlived: number[] = [];
      try {
        await waitUntil(() => liveInGroup(run.child.pid!).length === 0, 'the run\'s processes to end', 10_000, 50);
      } catch {
        outlived = liveInGroup(run.child.pid!);
        for (const pid of outlived) process.kill(pid, 'SIGKILL');
      }
      return { mode, delayMs, dir, out, exit, outlived, stderr: run.stderr() };
    }));

    let written = 0;
    let spans = 0;
    for (const r of results) {
      const where = `${r.mode} after ${r.delayMs} ms (exit ${String(r.exit.code ?? r.exit.signal)}): ${r.stderr.slice(-300)}`;
      assert.deepEqual(r.outlived, [], `no process outlived the run; ${where}`);
      assert.deepEqual(readdirSync(r.dir).filter((f) => f !== 'dynamic-traces.json'), [], `no temporary file left; ${where}`);
      if (!existsSync(r.out)) continue;
      const text = readFileSync(r.out, 'utf8');
      const doc = JSON.parse(text) as DynamicDoc;
      assert.equal(dynamicTracesErrors(doc), undefined, where);
      assert.equal(doc.summary.trace_count, doc.traces.length, where);
      assert.equal(doc.summary.total_spans, doc.traces.reduce((n, tr) => n + tr.spans.length, 0), where);
      for (const tr of doc.traces) {
        assert.equal(tr.span_count, tr.spans.length, where);
        for (const s of tr.spans) assert.equal(s.trace_id, tr.trace_id, where);
      }
      written++;
      spans += doc.summary.total_spans;
    }
    t.diagnostic(results.map((r) => `${r.mode} at ${r.delayMs} ms -> exit ${String(r.exit.code ?? r.exit.signal)}, ${existsSync(r.out) ? 'file' : 'no file'}`).join('; '));
    t.diagnostic(`${written} of 10 runs wrote a file, ${spans} spans in all`);
    // A stop late enough lands after the receiver is up; at least one such run must have written.
    assert.ok(written > 0 || results.every((r) => r.delayMs < 300), 'some run wrote its file');
  });

  it('a child that crashes (process.abort, kill -9) loses only its unfinished span', async () => {
    const dir = tempDir();
    const out = path.join(dir, 'dynamic-traces.json');
    // cwd in the temporary directory: a core file from the abort, where the system writes one, stays there.
    const run = startCyb(['trace', '--grace', '1s', '-o', out, '--', process.execPath, path.join(FIXTURES, 'crash-children.js')], { cwd: dir });
    const exit = await run.done;
    assert.equal(exit.code, 0, run.stderr());
    assert.match(run.stderr() + run.stdout(), /cyb trace: command exited/);
    const doc = JSON.parse(readFileSync(out, 'utf8')) as DynamicDoc;
    assert.equal(dynamicTracesErrors(doc), undefined);
    const names = doc.traces.flatMap((tr) => tr.spans.map((s) => s.name)).sort();
    const expected = [
      ...[1, 2, 3, 4, 5].map((i) => `abort done ${i}`),
      ...[1, 2, 3, 4, 5].map((i) => `kill done ${i}`),
      ...[1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((i) => `steady done ${i}`),
    ].sort();
    assert.deepEqual(names, expected, 'every finished span of every child, and no unfinished one');
    // Three processes sent spans, each under its own pid.
    const pids = new Set(doc.traces.flatMap((tr) => tr.spans.map((s) => String(s.metadata?.['process.pid']))));
    assert.equal(pids.size, 3);
  });
});
