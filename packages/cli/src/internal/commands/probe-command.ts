import type { Command } from 'commander';
import { probeBrokers, type ProbeTarget } from '../../probeBrokers.js';
import { parseDuration } from '../option-parsers.js';
import { colorsFor, newTable } from '../terminal.js';
import type { CliContext } from '../CliContext.js';

interface ProbeOptions {
  amqp?: string;
  kafka?: string;
  redis?: string;
  timeout: number;
  json?: boolean;
}

export function registerProbe(program: Command, ctx: CliContext): void {
  program
    .command('probe')
    .summary('send one traced message through each broker and back')
    .description(
      'Checks each broker and sends one traced message through it and back, reporting per transport whether\n' +
      'the trace context survived the round trip (same trace id, the sending span as parent). With no\n' +
      'option it probes RabbitMQ and Redis at AMQP_URL / REDIS_URL (or their local defaults), and Kafka when\n' +
      'KAFKA_BROKERS is set. Exits 1 when any probed transport fails.',
    )
    .option('--amqp <url>', 'RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672')
    .option('--kafka <brokers>', 'Kafka brokers, e.g. 127.0.0.1:9092[,host:port]')
    .option('--redis <url>', 'Redis URL, e.g. redis://127.0.0.1:6379')
    .option('--timeout <time>', 'time allowed per transport', parseDuration, 20_000)
    .option('--json', 'print the results as JSON')
    .addHelpText('after', [
      '',
      'Examples:',
      '  $ cyb probe',
      '  $ cyb probe --amqp amqp://guest:guest@127.0.0.1:5672 --kafka 127.0.0.1:9092 --redis redis://127.0.0.1:6379',
    ].join('\n'))
    .action(async (options: ProbeOptions) => {
      const targets: ProbeTarget[] = [];
      const explicit = options.amqp !== undefined || options.kafka !== undefined || options.redis !== undefined;
      const amqp = options.amqp ?? (explicit ? undefined : ctx.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
      const kafka = options.kafka ?? (explicit ? undefined : ctx.env.KAFKA_BROKERS);
      const redis = options.redis ?? (explicit ? undefined : ctx.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
      if (amqp) targets.push({ transport: 'amqp', target: amqp });
      if (kafka) targets.push({ transport: 'kafka', target: kafka });
      if (redis) targets.push({ transport: 'redis', target: redis });
      const results = await probeBrokers(targets, { timeoutMs: options.timeout });
      if (options.json) {
        ctx.stdout.write(`${JSON.stringify({ results }, null, 2)}\n`);
      } else {
        const c = colorsFor(ctx.stdout, ctx.env);
        const yes = (ok: boolean): string => (ok ? c.green('yes') : c.red('no'));
        const table = newTable(['transport', 'target', 'reachable', 'round trip', 'context survived', 'trace id / error']);
        for (const r of results) {
          table.push([r.transport, r.target, yes(r.reachable), r.round_trip_ms === null ? '-' : `${r.round_trip_ms} ms`,
            yes(r.context_survived), r.error ? c.red(r.error) : (r.trace_id ?? '')]);
        }
        ctx.stdout.write(`${table.toString()}\n`);
        if (!kafka && !explicit) ctx.stdout.write(c.dim('kafka not probed: give --kafka or set KAFKA_BROKERS\n'));
      }
      if (results.some((r) => !r.context_survived)) ctx.exitCode = 1;
    });
}
