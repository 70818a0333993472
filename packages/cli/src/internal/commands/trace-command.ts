import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Option, type Command } from 'commander';
import { createLogUpdate } from 'log-update';
import { Collector, toOtlpJson, writeDynamicTraces, writeJsonAtomic, type SpanRecord } from '@cyb/core';
import { OtlpReceiver, DEFAULT_MAX_BODY_BYTES } from '../../OtlpReceiver.js';
import { UsageError } from '../errors.js';
import { colorsFor, newTable } from '../terminal.js';
import { parseDuration, parseInteger, parseRatio } from '../option-parsers.js';
import { displayPath } from '../display-path.js';
import type { CliContext } from '../CliContext.js';

interface TraceOptions {
  output: string;
  format: 'json' | 'otlp';
  duration?: number;
  port: number;
  host: string;
  sample: number;
  maxTraces: number;
  maxSpansPerTrace: number;
  maxBody: number;
  grace: number;
  progress: boolean;
}

const REGISTER_URL = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'register.js')).href;
/** How long the command gets to end after a forwarded signal before it is killed. */
const CHILD_KILL_AFTER_MS = 10_000;
/** Exports arriving after the command ended: wait until this long passes without one. */
const QUIET_MS = 300;

export function registerTrace(program: Command, ctx: CliContext): void {
  program
    .command('trace')
    .summary('run a command with tracing and record its traces')
    .description(
      'Runs <command> with tracing preloaded (node --import, through NODE_OPTIONS, so Node child processes\n' +
      'are traced too). Their spans, and those of any OpenTelemetry SDK pointed at the receiver, arrive over\n' +
      'OTLP/HTTP JSON on 127.0.0.1 and are grouped by trace id. Stops when the command exits, after\n' +
      '--duration, or on Ctrl-C/SIGTERM (forwarded to the command), then writes --output atomically and\n' +
      'exits with the command\'s exit code. Without a command it only receives, until --duration or Ctrl-C.',
    )
    .argument('[command...]', 'the command to run, after --')
    .option('-o, --output <file>', 'where to write the traces', 'dynamic-traces.json')
    .addOption(new Option('--format <format>', 'output format: dynamic-traces json, or the raw spans as OTLP JSON').choices(['json', 'otlp']).default('json'))
    .option('-d, --duration <time>', 'stop after this long (e.g. 30s, 2m, 500ms); default: when the command exits', parseDuration)
    .option('-p, --port <port>', 'receiver port; 0 picks a free one', (v) => parseInteger(v, '--port', 0, 65535), 0)
    .option('--host <address>', 'receiver address; non-loopback senders are refused anyway', '127.0.0.1')
    .option('--sample <ratio>', 'fraction of traces to keep, decided by trace id (0..1)', (v) => parseRatio(v, '--sample'), 1)
    .option('--max-traces <n>', 'traces kept at most; the least recently active is evicted first', (v) => parseInteger(v, '--max-traces', 1), 1000)
    .option('--max-spans-per-trace <n>', 'spans kept per trace; later ones are dropped and counted', (v) => parseInteger(v, '--max-spans-per-trace', 1), 50)
    .option('--max-body <bytes>', 'largest OTLP request accepted (413 above)', (v) => parseInteger(v, '--max-body', 1024), DEFAULT_MAX_BODY_BYTES)
    .option('--grace <time>', 'after the command ends, wait at most this long for its last exports', parseDuration, 3000)
    .option('--no-progress', 'no live progress line, even on a terminal')
    .passThroughOptions()
    .addHelpText('after', [
      '',
      'Examples:',
      '  $ cyb trace -o dynamic-traces.json -- node server.js',
      '  $ cyb trace --duration 60s --sample 0.25 -- npm start',
      '  $ cyb trace --port 4318 --duration 5m          # receive from other OTLP senders only',
    ].join('\n'))
    .action(async (command: string[], options: TraceOptions) => {
      ctx.exitCode = await runTrace(command, options, ctx);
    });
}

async function runTrace(command: string[], options: TraceOptions, ctx: CliContext): Promise<number> {
  const c = colorsFor(ctx.stderr, ctx.env);
  const started = Date.now();
  const collector = new Collector({ maxTraces: options.maxTraces, maxSpansPerTrace: options.maxSpansPerTrace, sampleRate: options.sample });
  const processes = new Set<string>();
  const otlpSpans: SpanRecord[] = [];
  const receiver = new OtlpReceiver({
    host: options.host,
    port: options.port,
    maxBodyBytes: options.maxBody,
    onSpans: (spans) => {
      for (const s of spans) {
        processes.add(`${String(s.resource?.['service.name'] ?? '?')}/${String(s.resource?.['process.pid'] ?? '?')}`);
        collector.add(s);
        if (options.format === 'otlp') otlpSpans.push(s);
      }
    },
  });
  let address: { url: string; port: number };
  try {
    address = await receiver.listen();
  } catch (error) {
    throw new UsageError(`trace: cannot listen on ${options.host}:${options.port} (${(error as Error).message})`);
  }
  const output = path.resolve(ctx.cwd, options.output);
  ctx.stderr.write(`cyb trace: receiving OTLP on ${address.url}\n`);

  // Live progress on a terminal only; a pipe gets the one line above and the summary.
  const live = options.progress && ctx.stderr.isTTY === true ? createLogUpdate(ctx.stderr, { showCursor: true }) : undefined;
  const render = (): void => {
    const s = collector.stats();
    live?.(c.cyan(`cyb trace ${((Date.now() - started) / 1000).toFixed(1)}s`) +
      `  traces ${s.traces}  spans ${s.spans}  processes ${processes.size}  ${c.dim(`(port ${address.port})`)}`);
  };
  const ticker = live ? setInterval(render, 250) : undefined;

  let child: ChildProcess | undefined;
  let childExit: Promise<number> = Promise.resolve(0);
  let stopReason = command.length > 0 ? 'command exited' : 'duration elapsed';
  let stopRequested: (() => void) | undefined;
  const stopped = new Promise<void>((resolve) => {
    stopRequested = resolve;
  });

  if (command.length > 0) {
    const env = {
      ...ctx.env,
      NODE_OPTIONS: `${ctx.env.NODE_OPTIONS ?? ''} --import ${REGISTER_URL}`.trim(),
      CYB_OTLP_URL: address.url,
      ...(options.sample < 1 ? { CYB_SAMPLE_RATE: String(options.sample) } : {}),
    };
    child = spawn(command[0]!, command.slice(1), { cwd: ctx.cwd, env, stdio: 'inherit' });
    childExit = new Promise<number>((resolve) => {
      child!.once('error', (error: NodeJS.ErrnoException) => {
        ctx.stderr.write(`cyb trace: cannot run ${command[0]}: ${error.code === 'ENOENT' ? 'command not found' : error.message}\n`);
        resolve(error.code === 'ENOENT' ? 127 : 126);
      });
      child!.once('exit', (code, signal) => {
        resolve(code ?? (signal ? 128 + (osConstants.signals[signal] ?? 0) : 1));
      });
    });
    void childExit.then(() => stopRequested?.());
  }

  const durationTimer = options.duration !== undefined
    ? setTimeout(() => {
      stopReason = 'duration elapsed';
      stopChild('SIGTERM');
      stopRequested?.();
    }, options.duration)
    : undefined;

  let killTimer: NodeJS.Timeout | undefined;
  function stopChild(signal: NodeJS.Signals): void {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
    killTimer ??= setTimeout(() => child?.kill('SIGKILL'), CHILD_KILL_AFTER_MS);
  }
  let signalsSeen = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signalsSeen += 1;
    stopReason = `${signal} received`;
    // A second Ctrl-C means now.
    stopChild(signalsSeen > 1 ? 'SIGKILL' : signal);
    if (!child) stopRequested?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    await stopped;
    const exitCode = await childExit;
    if (killTimer) clearTimeout(killTimer);
    if (durationTimer) clearTimeout(durationTimer);
    await waitForQuiet(receiver, options.grace);
    await receiver.close();
    if (ticker) clearInterval(ticker);
    live?.clear();
    live?.done();

    const receiverStats = receiver.stats();
    const summaryExtras = {
      processes: processes.size,
      otlp_requests: receiverStats.accepted,
      otlp_rejected: Object.values(receiverStats.rejected).reduce((a, b) => a + b, 0),
      duration_ms: Date.now() - started,
    };
    if (options.format === 'otlp') {
      await writeJsonAtomic(output, toOtlpJson(otlpSpans));
    } else {
      await writeDynamicTraces(output, collector, { summary: summaryExtras });
    }
    const stats = collector.stats();
    const table = newTable(['traces', 'spans', 'processes', 'dropped spans', 'evicted traces', 'sampled out', 'rejected requests']);
    table.push([stats.traces, stats.spans, processes.size, stats.droppedSpans, stats.evictedTraces, stats.sampledOut, summaryExtras.otlp_rejected].map(String));
    ctx.stderr.write(`${table.toString()}\n`);
    ctx.stderr.write(`cyb trace: ${stopReason} after ${(summaryExtras.duration_ms / 1000).toFixed(1)}s; wrote ${displayPath(ctx.cwd, output)}` +
      `${command.length > 0 ? `; command exit code ${exitCode}` : ''}\n`);
    return exitCode;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (ticker) clearInterval(ticker);
    if (durationTimer) clearTimeout(durationTimer);
    if (killTimer) clearTimeout(killTimer);
  }
}

/** Waits until no export has arrived for a moment (the processes' last flushes), or `graceMs` passed. */
async function waitForQuiet(receiver: OtlpReceiver, graceMs: number): Promise<void> {
  const deadline = Date.now() + graceMs;
  const endedAt = Date.now();
  for (;;) {
    const s = receiver.stats();
    const last = Math.max(s.lastRequestAt, endedAt);
    if (s.inFlight === 0 && Date.now() - last >= QUIET_MS) return;
    if (Date.now() >= deadline) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
