import { configure } from '@cyb/core';

/** What a started service hands back: facts for the launcher, and how to stop it. */
export interface RunningService {
  info?: Record<string, unknown>;
  stop(): Promise<void>;
}

/** The messages a service and the launcher exchange over the IPC channel. */
export type ServiceMessage =
  | { type: 'ready'; service: string; pid: number; info: Record<string, unknown> }
  | { type: 'failed'; service: string; error: string }
  | { type: 'stop' };

function log(service: string, text: string): void {
  process.stderr.write(`[${service}] ${text}\n`);
}

/**
 * Runs one demo service as a child of the launcher: names the process's spans, starts the service,
 * says `ready` over IPC, and on `stop` (or SIGINT/SIGTERM) shuts it down and lets the event loop
 * drain. The process is never ended with `process.exit()`, so the tracing preload sends its last
 * spans on the way out.
 *
 * @example
 * await runService('demo-gateway', async () => { ...; return { info: { port }, stop } });
 */
export async function runService(service: string, start: () => Promise<RunningService>): Promise<void> {
  configure({ serviceName: service });
  let running: RunningService | undefined;
  let stopping: Promise<void> | undefined;

  const stop = (why: string): Promise<void> => {
    stopping ??= (async () => {
      // The launcher reports its own stops; anything else is worth a line.
      if (why !== 'launcher asked') log(service, `stopping (${why})`);
      try {
        await running?.stop();
      } catch (error) {
        process.exitCode = 1;
        log(service, `stop failed: ${(error as Error).stack ?? String(error)}`);
      }
      process.off('message', onMessage);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('disconnect', onDisconnect);
      if (process.connected) process.disconnect();
    })();
    return stopping;
  };
  const onMessage = (message: ServiceMessage): void => {
    if (message?.type === 'stop') void stop('launcher asked');
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    void stop(signal);
  };
  // The launcher went away without a word (killed): no service outlives it.
  const onDisconnect = (): void => {
    void stop('the launcher is gone');
  };
  process.on('message', onMessage);
  process.on('disconnect', onDisconnect);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    running = await start();
  } catch (error) {
    process.exitCode = 1;
    const text = (error as Error).stack ?? String(error);
    log(service, `could not start: ${text}`);
    process.send?.({ type: 'failed', service, error: (error as Error).message ?? String(error) } satisfies ServiceMessage);
    await stop('start failed');
    return;
  }
  if (stopping) {
    // A stop arrived while starting: finish it now that there is something to stop.
    await running.stop().catch(() => undefined);
    return;
  }
  process.send?.({ type: 'ready', service, pid: process.pid, info: running.info ?? {} } satisfies ServiceMessage);
}
