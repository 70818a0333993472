// Runs every benchmark suite under bench/, each in its own process, and prints the tables.
// Usage: npm run bench            (all suites)
//        npm run bench -- core    (suites whose name contains "core")
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import os from 'node:os';

const only = process.argv[2];

// The broker suites need RabbitMQ, Redis and a Kafka broker: bring them up the way `npm test` does.
let startedBroker = false;
if (!process.env.KAFKA_BROKERS || !process.env.AMQP_URL || !process.env.REDIS_URL) {
  const root = new URL('../', import.meta.url).pathname;
  const env = execFileSync('bash', [`${root}tools/services.sh`, 'up'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  for (const line of env.split('\n')) {
    const m = /^export ([A-Z_]+)=(.*)$/.exec(line);
    if (m) process.env[m[1]] = m[2];
  }
  startedBroker = process.env.CYB_KAFKA_MOCK_STARTED === '1';
  if (startedBroker) {
    process.on('exit', () => execFileSync('bash', [`${root}tools/services.sh`, 'down'], { stdio: 'inherit' }));
  }
}
const dir = new URL('./', import.meta.url);
const suites = readdirSync(dir, { withFileTypes: true })
  .filter((d) => d.isDirectory() && !['lib', 'results', 'node_modules'].includes(d.name))
  .map((d) => d.name)
  .filter((name) => !only || name.includes(only));

console.log(`Node.js ${process.version}, ${os.availableParallelism()} CPUs (${os.cpus()[0]?.model ?? 'unknown model'})`);
for (const suite of suites) {
  const entry = new URL(`./${suite}/run.mjs`, dir);
  if (!existsSync(entry)) continue;
  console.log(`\n## ${suite}`);
  execFileSync(process.execPath, [entry.pathname], { stdio: 'inherit' });
}
