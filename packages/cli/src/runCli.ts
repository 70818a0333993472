import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { CliError } from './internal/errors.js';
import type { CliContext } from './internal/CliContext.js';
import { registerStatic } from './internal/commands/static-command.js';
import { registerDiff } from './internal/commands/diff-command.js';
import { registerTrace } from './internal/commands/trace-command.js';
import { registerReport } from './internal/commands/report-command.js';
import { registerProbe } from './internal/commands/probe-command.js';

/** Options of {@link runCli}: the process's surroundings, replaceable for embedding. */
export interface RunCliOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  stdout?: CliContext['stdout'];
  stderr?: CliContext['stderr'];
}

/**
 * Runs the `cyb` command line and resolves to the exit code: 0 on success, 2 for a usage error,
 * 1 for an unreadable or invalid input, or what the command itself decided (`trace` returns its
 * child's code).
 *
 * @example
 * ```ts
 * process.exitCode = await runCli(process.argv);
 * ```
 */
export async function runCli(argv: readonly string[], options: RunCliOptions = {}): Promise<number> {
  const ctx: CliContext = {
    cwd: options.cwd ?? process.cwd(),
    env: options.env ?? process.env,
    stdout: options.stdout ?? process.stdout,
    stderr: options.stderr ?? process.stderr,
    exitCode: 0,
  };
  const program = new Command('cyb');
  program
    .description('Cybernetic Trace: record what ran across processes and brokers, and hold it against the static call graph.')
    .version(packageVersion(), '-V, --version')
    .showSuggestionAfterError(true)
    .enablePositionalOptions()
    .addHelpText('after', '\nExample:\n  $ cyb trace -o dynamic-traces.json -- node server.js\n  $ cyb static . && cyb diff archeology-results.json dynamic-traces.json');
  registerTrace(program, ctx);
  registerStatic(program, ctx);
  registerDiff(program, ctx);
  registerReport(program, ctx);
  registerProbe(program, ctx);

  // One clear line on stderr for usage errors instead of commander's default exit.
  const configure = (cmd: Command): void => {
    cmd.exitOverride();
    cmd.configureOutput({
      writeOut: (text) => ctx.stdout.write(text),
      writeErr: (text) => ctx.stderr.write(text),
      // One line, whatever commander composed (it puts suggestions on a line of their own).
      outputError: (text, write) => write(`cyb: ${text.replace(/^error: /, '').trim().replace(/\s*\n\s*/g, ' ')}\n`),
    });
    for (const sub of cmd.commands) configure(sub);
  };
  configure(program);

  try {
    await program.parseAsync([...argv]);
    return ctx.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return 0;
      // `cyb` alone: commander has shown the help on stderr; it is still a usage error.
      if (error.code === 'commander.executeSubCommandAsync') return error.exitCode;
      return 2;
    }
    if (error instanceof CliError) {
      ctx.stderr.write(`cyb: ${error.message}\n`);
      return error.exitCode;
    }
    ctx.stderr.write(`cyb: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
