/**
 * `npm run demo`: the whole chain in one command.
 *
 *   1. `cyb trace` runs the launcher (main.js) and so every process of the demo, traced;
 *   2. `cyb static apps/demo` builds the static call graph of the demo's code;
 *   3. `cyb diff` holds one against the other: the invisible dependencies (saved as JSON, printed as a table);
 *   4. `cyb report` renders it all into one HTML page;
 *   5. a short summary.
 *
 *   node apps/demo/dist/src/run-demo.js [--out DIR] [--seed 42] [--requests 16] [--concurrency 4]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from './lib/config.js';
import { formatSummary, summarizeRun } from './lib/summary.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CYB = path.join(path.dirname(fileURLToPath(import.meta.resolve('@cyb/cli/package.json'))), 'dist', 'src', 'bin.js');

function timestamp(): string {
  const d = new Date();
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}${two(d.getMonth() + 1)}${two(d.getDate())}-${two(d.getHours())}${two(d.getMinutes())}${two(d.getSeconds())}`;
}

/** Runs a command from the repo root; resolves with its exit code and, if asked, its stdout. */
function run(args: string[], capture = false): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', capture ? 'pipe' : 'inherit', 'inherit'] });
    let stdout = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.once('error', (error) => {
      process.stderr.write(`demo: cannot run ${args.join(' ')}: ${error.message}\n`);
      resolve({ code: 127, stdout });
    });
    child.once('close', (code, signal) => resolve({ code: code ?? (signal ? 130 : 1), stdout }));
  });
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      seed: { type: 'string', default: '42' },
      requests: { type: 'string', default: '16' },
      concurrency: { type: 'string', default: '4' },
    },
  });
  const out = path.resolve(values.out ?? path.join('out', `demo-${timestamp()}`));
  mkdirSync(out, { recursive: true });
  const files = {
    dynamic: path.join(out, 'dynamic-traces.json'),
    archeology: path.join(out, 'archeology-results.json'),
    diff: path.join(out, 'diff.json'),
    diffText: path.join(out, 'diff.txt'),
    report: path.join(out, 'report.html'),
  };
  // Ctrl-C reaches every process of the terminal's group: the launcher winds the demo down and
  // `cyb trace` still writes what it has, so this process carries on with what was recorded.
  let interrupted = false;
  process.on('SIGINT', () => {
    interrupted = true;
  });

  const seconds: Record<string, number> = {};
  const timed = async <T>(label: string, fn: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await fn();
    } finally {
      seconds[label] = (performance.now() - started) / 1000;
    }
  };
  const failed: string[] = [];
  const t0 = performance.now();

  process.stdout.write(`== 1/4 cyb trace: the demo's processes, traced -> ${path.relative(process.cwd(), files.dynamic)}\n`);
  const traced = await timed('demo', () => run([
    CYB, 'trace', '-o', files.dynamic, '--max-spans-per-trace', '2000', '--max-traces', '5000', '--',
    process.execPath, path.join(HERE, 'main.js'), '--out', out, '--seed', values.seed, '--requests', values.requests, '--concurrency', values.concurrency,
  ]));
  if (traced.code !== 0) failed.push(`the demo run (exit code ${traced.code})`);
  if (interrupted) {
    process.stdout.write(`\nInterrupted: the traces recorded so far are in ${path.relative(process.cwd(), files.dynamic)}; the analysis is skipped.\n`);
    return 130;
  }

  process.stdout.write(`\n== 2/4 cyb static apps/demo: the static call graph of the demo's code -> ${path.relative(process.cwd(), files.archeology)}\n`);
  // The demo's tests are not part of the system it shows.
  const statik = await timed('static analysis', () => run([CYB, 'static', 'apps/demo', '--ignore', 'test', '-o', files.archeology]));
  if (statik.code !== 0) failed.push(`cyb static (exit code ${statik.code})`);

  process.stdout.write(`\n== 3/4 cyb diff: what ran against what the static graph shows -> ${path.relative(process.cwd(), files.diff)}\n`);
  const diff = await timed('diff', async () => {
    const json = await run([CYB, 'diff', files.archeology, files.dynamic, '--json'], true);
    if (json.code === 0) writeFileSync(files.diff, json.stdout);
    const table = await run([CYB, 'diff', files.archeology, files.dynamic], true);
    if (table.code === 0) {
      writeFileSync(files.diffText, table.stdout);
      process.stdout.write(table.stdout);
    }
    return json.code !== 0 ? json : table;
  });
  if (diff.code !== 0) failed.push(`cyb diff (exit code ${diff.code})`);

  process.stdout.write(`\n== 4/4 cyb report -> ${path.relative(process.cwd(), files.report)}\n`);
  const report = await timed('report', () => run([CYB, 'report', files.dynamic, '--static', files.archeology, '-o', files.report, '--title', 'Cybernetic Trace demo']));
  if (report.code !== 0) failed.push(`cyb report (exit code ${report.code})`);
  seconds.total = (performance.now() - t0) / 1000;

  try {
    process.stdout.write(formatSummary(summarizeRun(out), out, seconds));
  } catch (error) {
    failed.push(`the summary (${(error as Error).message})`);
  }
  if (failed.length > 0) {
    process.stdout.write(`\nNot everything went to plan: ${failed.join('; ')}.\n`);
    return 1;
  }
  return 0;
}

process.exitCode = await main();
