// Runs every benchmark suite under bench/, each in its own process, and prints the tables.
// Usage: npm run bench            (all suites)
//        npm run bench -- core    (suites whose name contains "core")
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

const only = process.argv[2];
const dir = new URL('./', import.meta.url);
const suites = readdirSync(dir, { withFileTypes: true })
  .filter((d) => d.isDirectory() && !['lib', 'results', 'node_modules'].includes(d.name))
  .map((d) => d.name)
  .filter((name) => !only || name.includes(only));

for (const suite of suites) {
  const entry = new URL(`./${suite}/run.mjs`, dir);
  if (!existsSync(entry)) continue;
  console.log(`\n## ${suite}`);
  execFileSync(process.execPath, [entry.pathname], { stdio: 'inherit' });
}
