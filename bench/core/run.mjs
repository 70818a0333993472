import { execFileSync } from 'node:child_process';

const here = new URL('./', import.meta.url).pathname;
execFileSync(process.execPath, [`${here}span.mjs`], { stdio: 'inherit' });

console.log('\n### 1,000,000 spans, RSS growth (each in its own process)\n');
console.log('| variant | RSS growth (MB) | seconds | spans/s |');
console.log('|---|---:|---:|---:|');
for (const which of ['cyb', 'otel']) {
  const out = JSON.parse(execFileSync(process.execPath, [`${here}flood.mjs`, which], { encoding: 'utf8' }));
  const label = which === 'cyb' ? 'Collector (defaults)' : 'OpenTelemetry SDK, BatchSpanProcessor, discarding exporter';
  console.log(`| ${label} | ${out.rssGrowthMB.toFixed(1)} | ${out.seconds.toFixed(2)} | ${Math.round(out.spans / out.seconds).toLocaleString('en-US')} |`);
}
