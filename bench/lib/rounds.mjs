// Rotating rounds for the broker suites: every measurement is a fresh process running one variant;
// the order rotates each round so drift on a shared machine spreads over all variants. Results are
// medians, and each variant's ratio to plain is the median of per-round ratios (paired, so a slow
// round favours no one).
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Runs `script` with `args` in its own process; resolves with the JSON of its last output line. */
function runVariant(script, args) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${args.join(' ')}: ${err.message}\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').pop()));
    });
  });
}

/**
 * Measures every variant `rounds` times (`argsOf(variant)` gives the script's arguments), prints a line
 * per round and the table, and returns the table's rows. Ratios are to `baseOf(variant)`, by default
 * the variant named plain.
 */
export async function rotatingRounds({ script, variants, rounds, argsOf, title, baseOf = () => 'plain' }) {
  const results = Object.fromEntries(variants.map((v) => [v, []]));
  const cpu = Object.fromEntries(variants.map((v) => [v, []]));
  for (let r = 0; r < rounds; r++) {
    const order = variants.map((_, i) => variants[(i + r) % variants.length]);
    const line = [];
    for (const v of order) {
      const res = await runVariant(script, argsOf(v));
      results[v].push(res.perSecond);
      cpu[v].push(res.cpuUsPerMessage);
      line.push(`${v} ${res.perSecond}/s`);
    }
    console.log(`round ${r + 1}: ${line.join(', ')}`);
  }
  console.log(`\n${title}`);
  const bases = new Set(variants.map(baseOf));
  const against = bases.size === 1 ? [...bases][0] : 'its plain variant';
  console.log(`| variant | median msg/s | min | max | ratio to ${against} (paired median) | CPU µs/msg (median) |`);
  console.log('|---|---:|---:|---:|---:|---:|');
  const rows = [];
  for (const v of variants) {
    const xs = results[v];
    const base = results[baseOf(v)];
    const ratio = median(xs.map((x, i) => x / base[i]));
    const row = { variant: v, perSecond: Math.round(median(xs)), min: Math.min(...xs), max: Math.max(...xs), ratio: Number(ratio.toFixed(3)), cpuUsPerMessage: median(cpu[v]) };
    rows.push(row);
    console.log(`| ${v} | ${row.perSecond} | ${row.min} | ${row.max} | ${ratio.toFixed(3)} | ${row.cpuUsPerMessage.toFixed(1)} |`);
  }
  return rows;
}

/** Writes bench/results/<suite>.json. */
export function saveResults(suite, data) {
  mkdirSync(new URL('../results/', import.meta.url), { recursive: true });
  writeFileSync(new URL(`../results/${suite}.json`, import.meta.url), JSON.stringify(data, null, 2));
}
