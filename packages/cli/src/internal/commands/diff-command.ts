import type { Command } from 'commander';
import { diffTraces, type DiffFunction, type TraceDiff } from '../../diffTraces.js';
import { readArcheologyResults, readDynamicTraces } from '../read-input.js';
import { colorsFor, newTable } from '../terminal.js';
import type { CliContext } from '../CliContext.js';
import type { FunctionKey } from '../formats.js';

/** Exit code of `--fail-on-invisible` when invisible edges exist; 1 and 2 already mean bad input and bad usage. */
export const INVISIBLE_EXIT_CODE = 3;
const MAX_TABLE_ROWS = 40;

export function registerDiff(program: Command, ctx: CliContext): void {
  program
    .command('diff')
    .summary('invisible dependencies: edges that ran but the static graph lacks')
    .description(
      'Holds a dynamic-traces.json against an archeology-results.json. Lists the caller -> callee edges that\n' +
      'ran but are not in the static graph (kind dynamic-dispatch, message, http or call; where they were seen,\n' +
      'how often, example trace ids) and the static edges that never ran.',
    )
    .argument('<archeology.json>', 'static call graph from `cyb static`')
    .argument('<dynamic.json>', 'recorded traces from `cyb trace`')
    .option('--json', 'print the comparison as JSON instead of tables')
    .option('--fail-on-invisible', `exit with code ${INVISIBLE_EXIT_CODE} when any invisible edge exists (for CI gates)`)
    .addHelpText('after', '\nExample:\n  $ cyb diff archeology-results.json dynamic-traces.json --fail-on-invisible')
    .action((archeologyFile: string, dynamicFile: string, options: { json?: boolean; failOnInvisible?: boolean }) => {
      const archeology = readArcheologyResults(archeologyFile, ctx.cwd);
      const dynamic = readDynamicTraces(dynamicFile, ctx.cwd);
      const diff = diffTraces(archeology, dynamic);
      ctx.stdout.write(options.json ? `${JSON.stringify(diff, null, 2)}\n` : renderDiff(diff, ctx));
      if (options.failOnInvisible && diff.invisible.length > 0) ctx.exitCode = INVISIBLE_EXIT_CODE;
    });
}

function name(fn: FunctionKey): string {
  return `${fn.module}:${fn.function}/${fn.arity}`;
}

function place(fn: DiffFunction): string {
  return fn.file ? `${name(fn)}\n  ${fn.file}${fn.line ? `:${fn.line}` : ''}` : name(fn);
}

function renderDiff(diff: TraceDiff, ctx: CliContext): string {
  const c = colorsFor(ctx.stdout, ctx.env);
  const s = diff.summary;
  const lines: string[] = [];
  const byKind = Object.entries(s.invisible_by_kind).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`).join(', ');
  lines.push(c.bold(`Invisible dependencies: ${s.invisible_edges}${byKind ? ` (${byKind})` : ''}`));
  if (diff.invisible.length > 0) {
    const table = newTable(['kind', 'caller', 'callee', 'runs', 'via', 'seen in', 'example trace']);
    for (const e of diff.invisible.slice(0, MAX_TABLE_ROWS)) {
      table.push([c.yellow(e.kind), place(e.from), place(e.to), String(e.count), e.via.join('\n'), e.seen_in.join('\n'), e.trace_ids[0] ?? '']);
    }
    lines.push(table.toString());
    if (diff.invisible.length > MAX_TABLE_ROWS) lines.push(`... and ${diff.invisible.length - MAX_TABLE_ROWS} more (--json lists all)`);
  }
  lines.push('');
  lines.push(c.bold(`Static edges never exercised: ${s.unexercised_static_edges} of ${s.static_edges}`));
  if (diff.unexercised.length > 0) {
    // Edges whose caller ran come first: those are the surprising ones.
    const rows = [...diff.unexercised].sort((a, b) => Number(b.caller_ran) - Number(a.caller_ran));
    const table = newTable(['caller', 'callee', 'caller ran']);
    for (const e of rows.slice(0, MAX_TABLE_ROWS)) table.push([name(e.from), name(e.to), e.caller_ran ? 'yes' : c.dim('no')]);
    lines.push(table.toString());
    if (rows.length > MAX_TABLE_ROWS) lines.push(`... and ${rows.length - MAX_TABLE_ROWS} more (--json lists all)`);
  }
  lines.push('');
  lines.push(c.dim(`${s.traces} traces, ${s.dynamic_edges} dynamic edges, ${s.exercised_static_edges} static edges exercised`));
  return `${lines.join('\n')}\n`;
}
