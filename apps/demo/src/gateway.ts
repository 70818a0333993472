/**
 * The Express gateway: the way in. `POST /v1/generate` checks the request against the model
 * service (Koa, over HTTP) and puts it on the VSM bus; `GET /v1/events` streams what S4 learned, as
 * server-sent events fed by Redis pub/sub; `GET /v1/state/:key` reads the shared VSM state;
 * `GET /health` says what it is connected to.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Channel } from 'amqplib';
import express, { type NextFunction, type Request, type Response } from 'express';
import { currentSpan } from '@cyb/core';
import { traceHttp, traceHttpErrors, traceOutgoing } from '@cyb/http';
import { traceChannel } from '@cyb/amqp';
import { traceRedis } from '@cyb/redis';
import { createBridge, type Bridge } from '@cyb/vsm';
import { connectAmqp, isStandin, redisClient } from './lib/brokers.js';
import { isSystem, serviceEnv, type SystemName } from './lib/config.js';
import { HttpError } from './lib/HttpError.js';
import { runService } from './lib/service.js';
import { traced } from './lib/traced.js';
import { STATE_KEYS } from './systems/request.js';

/** The operation each system runs when a request names none. */
const MAIN_OPERATION: Record<SystemName, string> = { s1: 'operation', s2: 'coordinate', s3: 'control', s4: 'intelligence', s5: 'policy' };

await runService('demo-gateway', startGateway);

async function startGateway(): Promise<{ info: Record<string, unknown>; stop: () => Promise<void> }> {
  const env = serviceEnv();
  const { names } = env;
  const modelService = process.env.MODEL_SERVICE_URL;
  if (!modelService) throw new Error('MODEL_SERVICE_URL is not set');

  // The span exporter posts to /v1/traces; its own requests are not part of the demo.
  const stopOutgoing = traceOutgoing({ ignore: [/\/v1\/traces$/] });
  const connection = await connectAmqp(env.amqpUrl);
  const channel: Channel = traceChannel(await connection.createChannel());
  await channel.assertExchange(names.exchange, 'topic', { durable: false });

  const redis = traceRedis(redisClient(env.redisUrl));
  const bridge: Bridge = createBridge(redis, { prefix: names.statePrefix });
  // A subscribed connection can only listen, so events arrive on a connection of their own.
  const subscriber = traceRedis(redisClient(env.redisUrl));
  const streams = new Set<Response>();

  /** Fans one Redis event out to every open event stream. */
  function onEvent(channelName: string, message: string): void {
    if (channelName !== names.eventsChannel) return;
    for (const res of streams) res.write(`event: insight\ndata: ${message}\n\n`);
  }
  subscriber.on('message', traced(onEvent));
  await subscriber.subscribe(names.eventsChannel);

  /** `POST /v1/generate`: validate, ask the model service, moderate, publish to S1 (or the system named). */
  async function generate(req: Request, res: Response): Promise<void> {
    const body = (req.body ?? {}) as { prompt?: unknown; model?: unknown; system?: unknown; operation?: unknown };
    if (typeof body.prompt !== 'string' || body.prompt.trim() === '') throw new HttpError(400, 'prompt must be a non-empty string');
    const system = body.system ?? 's1';
    if (!isSystem(system)) throw new HttpError(400, `system must be one of s1..s5, got ${JSON.stringify(body.system)}`);
    const operation = typeof body.operation === 'string' && body.operation !== '' ? body.operation : MAIN_OPERATION[system];
    const model = typeof body.model === 'string' && body.model !== '' ? body.model : 'small';

    const found = await fetch(`${modelService}/v1/models/${encodeURIComponent(model)}`);
    if (found.status === 404) throw new HttpError(404, `unknown model ${model}`);
    if (!found.ok) throw new HttpError(502, `model service answered ${found.status}`);
    const { maxTokens } = (await found.json()) as { maxTokens: number };

    const verdict = await fetch(`${modelService}/v1/moderation`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: body.prompt }),
    });
    if (!verdict.ok) throw new HttpError(502, `moderation answered ${verdict.status}`);
    const { flagged, reason } = (await verdict.json()) as { flagged: boolean; reason?: string };
    if (flagged) throw new HttpError(422, `prompt refused by policy: ${reason ?? 'flagged'}`);

    const requestId = randomUUID();
    const payload = { requestId, prompt: body.prompt, model, maxTokens };
    channel.publish(names.exchange, `${system}.${operation}`, Buffer.from(JSON.stringify(payload)), {
      contentType: 'application/json',
      correlationId: requestId,
      messageId: requestId,
    });
    res.status(202).json({ requestId, system, operation, model });
  }

  /** `GET /v1/events`: server-sent events, one per insight S4 publishes, until the client leaves. */
  function events(req: Request, res: Response): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write(': connected\n\n');
    streams.add(res);
    req.on('close', () => streams.delete(res));
  }

  /** `GET /v1/state/:key`: one entry of the shared VSM state, as the bridge last stored it. */
  async function readState(req: Request, res: Response): Promise<void> {
    const key = String(req.params.key);
    if (!(Object.values(STATE_KEYS) as string[]).includes(key)) throw new HttpError(404, `no state called ${key}`);
    const pulled = await bridge.pullState(key);
    if (!pulled) throw new HttpError(404, `state ${key} has not been written yet`);
    res.json({ key, version: pulled.version, writer: pulled.writer, state: pulled.state });
  }

  /** `GET /health`: this process, the model service behind it, and which brokers are stand-ins. */
  async function health(_req: Request, res: Response): Promise<void> {
    const upstream = await fetch(`${modelService}/health`);
    res.status(upstream.ok ? 200 : 503).json({
      status: upstream.ok ? 'ok' : 'degraded',
      modelService: upstream.status,
      brokers: { amqp: isStandin(env.amqpUrl) ? 'stand-in' : 'rabbitmq', redis: env.redisUrl, kafka: env.kafkaBrokers.some(isStandin) ? 'stand-in' : 'kafka' },
    });
  }

  const app = express();
  app.use(traceHttp());
  // Hands the trace id back, so a caller can find its request in dynamic-traces.json.
  app.use((_req: Request, res: Response, next: NextFunction) => {
    const traceId = currentSpan()?.spanContext().traceId;
    if (traceId) res.setHeader('x-trace-id', traceId);
    next();
  });
  app.use(express.json());
  app.get('/health', traced(health));
  app.post('/v1/generate', traced(generate));
  app.get('/v1/events', traced(events));
  app.get('/v1/state/:key', traced(readState));
  app.use(traceHttpErrors());
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const status = error instanceof HttpError ? error.status : (error as { status?: number }).status ?? 500;
    res.status(status).json({ error: error instanceof Error ? error.message : String(error) });
  });

  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;

  return {
    info: { url: `http://127.0.0.1:${port}` },
    async stop() {
      for (const res of streams) res.end();
      streams.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await subscriber.quit();
      await redis.quit();
      await channel.close();
      await connection.close();
      stopOutgoing();
    },
  };
}
