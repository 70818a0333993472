import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomic } from '../atomic-write.js';
import { assertArcheologyResults } from '../read-input.js';
import { UsageError } from '../errors.js';
import { displayPath } from '../display-path.js';
import type { CliContext } from '../CliContext.js';

export function registerStatic(program: Command, ctx: CliContext): void {
  program
    .command('static')
    .summary('static call graph of a TypeScript/JavaScript project')
    .description(
      'Builds a static call graph through the TypeScript compiler: entry points (Express/Koa routes, amqplib\n' +
      'consumers, kafkajs eachMessage/eachBatch, ioredis subscribers, CLI commands, timers), the functions\n' +
      'reachable from each, and the caller -> callee edges. Lookups such as handlers[op](...) are not followed.',
    )
    .argument('<dir>', 'project root; module paths in the output are relative to it')
    .option('-o, --output <file>', 'where to write the results', 'archeology-results.json')
    .option('--ignore <names...>', 'directory names to skip (node_modules, dist, build are always skipped)')
    .addHelpText('after', '\nExample:\n  $ cyb static ./services/orders -o archeology-results.json')
    .action(async (dir: string, options: { output: string; ignore?: string[] }) => {
      const root = path.resolve(ctx.cwd, dir);
      if (!existsSync(root) || !statSync(root).isDirectory()) throw new UsageError(`static: ${dir} is not a directory`);
      const started = performance.now();
      // The compiler is large; only this command pays for loading it.
      const { analyzeProject } = await import('../../analyzeProject.js');
      const results = analyzeProject(root, options.ignore ? { ignore: options.ignore } : {});
      assertArcheologyResults(results);
      const output = path.resolve(ctx.cwd, options.output);
      writeFileAtomic(output, `${JSON.stringify(results, null, 2)}\n`);
      const ms = Math.round(performance.now() - started);
      ctx.stderr.write(
        `cyb static: ${results.summary.entry_point_count} entry points, ${results.edges.length} edges, ` +
        `${results.summary.orphan_function_count} orphan functions (${ms} ms) -> ${displayPath(ctx.cwd, output)}\n`,
      );
    });
}
