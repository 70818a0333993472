/**
 * Renders a report in headless Chromium and saves a PNG: how docs/report.png is made.
 *
 *   node apps/demo/dist/src/screenshot.js <report.html> <out.png> [--width 1440] [--height 1000] [--full-page]
 *
 * Needs a Chromium (Debian: `apt-get install chromium`); CHROMIUM_PATH overrides /usr/bin/chromium.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      width: { type: 'string', default: '1440' },
      height: { type: 'string', default: '1000' },
      'full-page': { type: 'boolean', default: false },
      trace: { type: 'string' },
    },
  });
  const [report, png] = positionals;
  if (!report || !png) {
    process.stderr.write('usage: screenshot.js <report.html> <out.png> [--width N] [--height N] [--full-page] [--trace TRACE_ID]\n');
    return 2;
  }
  const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    process.stderr.write(`screenshot: no Chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH)\n`);
    return 1;
  }
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: Number(values.width), height: Number(values.height) } });
    const errors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(pathToFileURL(path.resolve(report)).href, { waitUntil: 'load' });
    if (values.trace) {
      // Show one trace: filter the list down to it and open its waterfall.
      await page.fill('#filter', values.trace);
      await page.click(`.trace-row[data-trace-id="${values.trace}"]`);
    }
    mkdirSync(path.dirname(path.resolve(png)), { recursive: true });
    await page.screenshot({ path: png, fullPage: values['full-page'] });
    process.stdout.write(`screenshot: ${path.resolve(png)}${errors.length > 0 ? ` (page errors: ${errors.join('; ')})` : ''}\n`);
    return errors.length > 0 ? 1 : 0;
  } finally {
    await browser.close();
  }
}

process.exitCode = await main();
