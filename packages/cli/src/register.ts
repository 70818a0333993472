/**
 * Preloaded by `cyb trace` into every Node process it starts (`node --import .../register.js`, through
 * NODE_OPTIONS, so Node grandchildren get it too). It exports the process's finished spans to the
 * receiver named by `CYB_OTLP_URL`, and makes sure the last ones leave before the process ends,
 * without changing how or with which code the process ends.
 */
import { debuglog } from 'node:util';
import { isMainThread } from 'node:worker_threads';
import { configure, onSpanEnd, OtlpHttpExporter } from '@cyb/core';

const debug = debuglog('cyb:cli');
const FLUSH_ON_SIGNAL_MS = 2000;

function start(url: string): void {
  const rate = process.env.CYB_SAMPLE_RATE === undefined ? undefined : Number(process.env.CYB_SAMPLE_RATE);
  if (rate !== undefined && rate >= 0 && rate <= 1) configure({ sampleRate: rate });
  const exporter = new OtlpHttpExporter({ url, intervalMs: 200 }).start();

  // `beforeExit` fires again after any work a listener schedules; flush only when spans ended since
  // the last flush, or the process would never be allowed to end.
  let endedSinceFlush = 0;
  onSpanEnd(() => {
    endedSinceFlush += 1;
  });
  process.on('beforeExit', () => {
    if (endedSinceFlush === 0) return;
    endedSinceFlush = 0;
    void exporter.flush();
  });

  if (!isMainThread) return;
  const onSignal = (signal: NodeJS.Signals): void => {
    endedSinceFlush = 0;
    if (process.listenerCount(signal) > 1) {
      // The application handles this signal and decides when to end; just send what is queued.
      void exporter.flush();
      return;
    }
    // Nothing else listens: the default action would end the process now. Send what is queued
    // (briefly), then let that same default action happen, so the exit status is unchanged.
    process.removeListener(signal, onSignal);
    const timer = setTimeout(() => process.kill(process.pid, signal), FLUSH_ON_SIGNAL_MS);
    void exporter.flush().then(() => {
      clearTimeout(timer);
      process.kill(process.pid, signal);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

const url = process.env.CYB_OTLP_URL;
if (url) {
  try {
    start(url);
  } catch (error) {
    // Telemetry never stops the program it observes.
    debug('cyb register: cannot start the exporter: %o', error);
  }
}
