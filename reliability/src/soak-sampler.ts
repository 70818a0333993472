/**
 * Preloaded by the soak run into every Node process (`--import`, through NODE_OPTIONS, so `cyb trace`,
 * the launcher and each demo service get it). Every `CYB_SOAK_INTERVAL_MS` it appends one line to
 * `<CYB_SOAK_SAMPLES>/<pid>.jsonl`: resident set size, heap, event-loop delay percentiles since the last
 * line, and the spans this process finished since the last line. It writes nothing else and never
 * keeps the process alive.
 */
import { subscribe } from 'node:diagnostics_channel';
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';

/** One line of a process's samples file. */
export interface SoakSample {
  /** Milliseconds since the epoch. */
  t: number;
  pid: number;
  /** What the process is: `cyb trace`, `launcher`, `gateway`, `worker s3`, ... */
  name: string;
  rssMB: number;
  heapMB: number;
  /** Event-loop delay over the interval, milliseconds, beyond the 10 ms sampling timer itself. */
  eldP50: number;
  eldP99: number;
  eldMax: number;
  /** Spans this process finished during the interval. */
  spans: number;
}

/** A readable name from the script a process runs. */
export function processName(argv: readonly string[]): string {
  const script = path.basename(argv[1] ?? 'node', '.js');
  if (script === 'bin') return `cyb ${argv[2] ?? ''}`.trim();
  if (script === 'worker') return `worker ${argv[2] ?? ''}`.trim();
  if (script === 'soak-run') return 'launcher';
  return script;
}

function start(dir: string, intervalMs: number): void {
  const file = path.join(dir, `${process.pid}.jsonl`);
  const name = processName(process.argv);
  // The histogram holds how late a 10 ms timer fired, timer period included: an idle loop reads 10 ms.
  const RESOLUTION_MS = 10;
  const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  delay.enable();
  let spans = 0;
  // The end channel of @cyb/core's tracing channel `cyb:span`; counting needs no import of core.
  subscribe('tracing:cyb:span:end', () => {
    spans += 1;
  });
  const mb = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10;
  const ms = (ns: number): number => Math.max(0, Math.round((ns / 1e6 - RESOLUTION_MS) * 100) / 100);
  const write = (): void => {
    const memory = process.memoryUsage();
    const sample: SoakSample = {
      t: Date.now(),
      pid: process.pid,
      name,
      rssMB: mb(memory.rss),
      heapMB: mb(memory.heapUsed),
      eldP50: ms(delay.percentile(50)),
      eldP99: ms(delay.percentile(99)),
      eldMax: ms(delay.max),
      spans,
    };
    delay.reset();
    spans = 0;
    try {
      appendFileSync(file, `${JSON.stringify(sample)}\n`);
    } catch {
      // The results directory went away: the run is over for this process's purposes.
    }
  };
  write();
  setInterval(write, intervalMs).unref();
}

const dir = process.env.CYB_SOAK_SAMPLES;
if (dir !== undefined && dir !== '' && isMainThread) start(dir, Math.max(100, Number(process.env.CYB_SOAK_INTERVAL_MS) || 10_000));
