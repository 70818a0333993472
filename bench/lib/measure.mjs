// Small, dependency-free timing harness: warm-up, then alternating rounds of fixed duration per case,
// reporting the median throughput of each case and its ratio to a baseline.
import { mkdirSync, writeFileSync } from 'node:fs';
import { median } from './rounds.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 300);

function runFor(fn, ms) {
  let ops = 0;
  const batch = 1000;
  const end = process.hrtime.bigint() + BigInt(ms) * 1_000_000n;
  const start = process.hrtime.bigint();
  let now = start;
  while (now < end) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
    now = process.hrtime.bigint();
  }
  return (ops * 1e9) / Number(now - start);
}


/** Measures each case in alternating rounds; returns { name: opsPerSecond }. */
export async function measure(cases, hooks = {}) {
  const names = Object.keys(cases);
  for (const name of names) {
    hooks.before?.(name);
    runFor(cases[name], 100);
    hooks.after?.(name);
  }
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? names : [...names].reverse();
    for (const name of order) {
      hooks.before?.(name);
      samples[name].push(runFor(cases[name], ROUND_MS));
      hooks.after?.(name);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  return Object.fromEntries(names.map((n) => [n, median(samples[n])]));
}

/** Prints a markdown table per group and writes bench/results/<suite>.json. */
export function report(suite, groups) {
  const out = { suite, node: process.version, date: new Date().toISOString(), groups: [] };
  for (const g of groups) {
    console.log(`\n### ${g.title}\n`);
    console.log('| variant | ops/s | ratio to baseline |' + (g.showOverheadNs ? ' ns/op |' : ''));
    console.log('|---|---:|---:|' + (g.showOverheadNs ? '---:|' : ''));
    const base = g.results[g.baseline];
    const rows = [];
    for (const [name, ops] of Object.entries(g.results)) {
      const ratio = ops / base;
      const ns = 1e9 / ops;
      rows.push({ name, opsPerSecond: Math.round(ops), ratio: Number(ratio.toFixed(3)), nsPerOp: Number(ns.toFixed(1)) });
      console.log(`| ${name} | ${Math.round(ops).toLocaleString('en-US')} | ${ratio.toFixed(2)}x |` + (g.showOverheadNs ? ` ${ns.toFixed(1)} |` : ''));
    }
    if (g.showOverheadNs) {
      const [a, b] = rows;
      console.log(`\nadded per call: ${(b.nsPerOp - a.nsPerOp).toFixed(1)} ns`);
    }
    out.groups.push({ title: g.title, baseline: g.baseline, rows });
  }
  mkdirSync(new URL('../results/', import.meta.url), { recursive: true });
  writeFileSync(new URL(`../results/${suite}.json`, import.meta.url), JSON.stringify(out, null, 2));
}
