/**
 * The model service (Koa): the gateway asks it which models exist and whether a prompt passes
 * moderation. Moderation follows the policy S5 publishes through the VSM state bridge.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import Koa, { type Context } from 'koa';
import Router from '@koa/router';
import { traceHttp } from '@cyb/http';
import { createBridge } from '@cyb/vsm';
import { redisClient } from './lib/brokers.js';
import { serviceEnv } from './lib/config.js';
import { runService } from './lib/service.js';
import { traced } from './lib/traced.js';
import { DEFAULT_POLICY, STATE_KEYS, type PolicyRules } from './systems/request.js';

/** The models on offer and their token budgets. `unstable` fails on purpose: the demo's 5xx path. */
const MODELS: Record<string, { maxTokens: number; unstable?: true }> = {
  tiny: { maxTokens: 16 },
  small: { maxTokens: 64 },
  large: { maxTokens: 256 },
  unstable: { maxTokens: 64, unstable: true },
};

const MAX_BODY_BYTES = 64 * 1024;

await runService('demo-model-service', startModelService);

/** Reads a small JSON body; Koa has no body parser of its own. */
async function readJson(ctx: Context): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) ctx.throw(413, 'body too large');
    chunks.push(chunk);
  }
  try {
    const value = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // answered below
  }
  return ctx.throw(400, 'body must be a JSON object');
}

async function startModelService(): Promise<{ info: Record<string, unknown>; stop: () => Promise<void> }> {
  const env = serviceEnv();
  const redis = redisClient(env.redisUrl);
  const bridge = createBridge(redis, { prefix: env.names.statePrefix });

  /** `GET /v1/models/:model`: the model's budget; 404 for an unknown one, 500 from `unstable`. */
  async function getModel(ctx: Context): Promise<void> {
    const name = String(ctx.params.model);
    const model = MODELS[name];
    if (!model) ctx.throw(404, `no model called ${name}`);
    if (model.unstable) throw new Error(`model ${name} crashed while loading its weights`);
    ctx.body = { model: name, maxTokens: model.maxTokens };
  }

  /** `POST /v1/moderation`: flags a prompt that contains a word the current policy blocks. */
  async function moderate(ctx: Context): Promise<void> {
    const body = await readJson(ctx);
    const prompt = typeof body.prompt === 'string' ? body.prompt.toLowerCase() : '';
    const policy = (await bridge.pullState<PolicyRules>(STATE_KEYS.s5Policy))?.state ?? DEFAULT_POLICY;
    const hit = policy.blocked.find((word) => prompt.split(/\W+/).includes(word));
    ctx.body = hit === undefined ? { flagged: false, policy: policy.revision } : { flagged: true, reason: `contains "${hit}"`, policy: policy.revision };
  }

  /** `GET /health`. */
  async function health(ctx: Context): Promise<void> {
    ctx.body = { status: 'ok', models: Object.keys(MODELS) };
  }

  const router = new Router();
  router.get('/health', traced(health));
  router.get('/v1/models/:model', traced(getModel));
  router.post('/v1/moderation', traced(moderate));

  const app = new Koa();
  app.use(traceHttp());
  app.use(router.routes());
  app.use(router.allowedMethods());
  // Koa logs every 5xx to stderr by default; the demo's deliberate one would only add noise.
  app.silent = true;

  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    info: { url: `http://127.0.0.1:${port}` },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await redis.quit();
    },
  };
}
