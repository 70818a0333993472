import path from 'node:path';
import type { Command } from 'commander';
import { renderReport } from '../../renderReport.js';
import { writeFileAtomic } from '../atomic-write.js';
import { readArcheologyResults, readDynamicTraces } from '../read-input.js';
import { displayPath } from '../display-path.js';
import type { CliContext } from '../CliContext.js';

export function registerReport(program: Command, ctx: CliContext): void {
  program
    .command('report')
    .summary('one self-contained HTML page of the recorded traces')
    .description(
      'Writes one HTML file that opens with no network: the list of traces, a waterfall per trace with a\n' +
      'lane per process and the transport hops marked, and a dependency graph of the functions and services\n' +
      'that ran. With --static, edges missing from the static call graph are highlighted as invisible.',
    )
    .argument('<dynamic.json>', 'recorded traces from `cyb trace`')
    .option('-o, --output <file>', 'where to write the page', 'report.html')
    .option('--static <archeology.json>', 'static call graph from `cyb static`, to highlight invisible edges')
    .option('--title <text>', 'page title', 'Cybernetic Trace report')
    .addHelpText('after', '\nExample:\n  $ cyb report dynamic-traces.json --static archeology-results.json -o report.html')
    .action((dynamicFile: string, options: { output: string; static?: string; title: string }) => {
      const dynamic = readDynamicTraces(dynamicFile, ctx.cwd);
      const archeology = options.static ? readArcheologyResults(options.static, ctx.cwd) : undefined;
      const html = renderReport(dynamic, archeology ? { archeology, title: options.title } : { title: options.title });
      const output = path.resolve(ctx.cwd, options.output);
      writeFileAtomic(output, html);
      ctx.stderr.write(`cyb report: ${dynamic.traces.length} traces -> ${displayPath(ctx.cwd, output)}\n`);
    });
}
