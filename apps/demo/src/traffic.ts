/**
 * The traffic generator: a seeded plan that exercises every route of the gateway (and through it,
 * of the model service) and every operation of every system, including the error paths, then runs
 * it against a gateway and checks each answer.
 */

/** What a request is for, as the tests and the summary group them. */
export type RequestKind = 'pipeline' | 'unknown-operation' | 'handler-throws' | 'client-error' | 'server-error' | 'read';

export interface PlannedRequest {
  label: string;
  kind: RequestKind;
  method: 'GET' | 'POST';
  path: string;
  body?: Record<string, unknown>;
  expectStatus: number;
  /** A 202 whose work reaches S4 and so comes back as a server-sent event. */
  expectEvent: boolean;
  /** A 202 whose message no handler can finish: it ends in the dead-letter queue. */
  expectDeadLetter: boolean;
}

export interface SentRequest extends PlannedRequest {
  status: number;
  traceId: string | null;
  requestId: string | null;
  durationMs: number;
  ok: boolean;
  error?: string;
}

/** Every operation of every system, in the order the systems are numbered. */
export const OPERATIONS: readonly { system: string; operation: string; reachesS4: boolean }[] = [
  { system: 's1', operation: 'operation', reachesS4: true },
  { system: 's1', operation: 'status', reachesS4: false },
  { system: 's2', operation: 'coordinate', reachesS4: true },
  { system: 's2', operation: 'rebalance', reachesS4: false },
  { system: 's3', operation: 'control', reachesS4: true },
  { system: 's3', operation: 'report', reachesS4: false },
  { system: 's4', operation: 'intelligence', reachesS4: true },
  { system: 's4', operation: 'forecast', reachesS4: true },
  { system: 's5', operation: 'policy', reachesS4: false },
  { system: 's5', operation: 'identity', reachesS4: false },
];

const WORDS = [
  'viable', 'system', 'model', 'feedback', 'loop', 'variety', 'channel', 'signal', 'audit', 'policy', 'budget',
  'coordinate', 'operation', 'recursion', 'homeostat', 'regulator', 'observer', 'trace', 'message', 'broker',
];

/** mulberry32: a small, fast, seedable PRNG; the same seed gives the same traffic. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function prompt(random: () => number, words: number): string {
  return Array.from({ length: words }, () => WORDS[Math.floor(random() * WORDS.length)]).join(' ');
}

function generateRequest(label: string, kind: RequestKind, body: Record<string, unknown>, expect: Partial<PlannedRequest> = {}): PlannedRequest {
  return {
    label,
    kind,
    method: 'POST',
    path: '/v1/generate',
    body,
    expectStatus: 202,
    expectEvent: false,
    expectDeadLetter: false,
    ...expect,
  };
}

/**
 * The first phase: every operation, every error path, then `extra` random pipeline requests.
 * Prompts of random traffic stay within the smallest budget, so only the planned throw throws.
 */
export function planTraffic(seed: number, extra: number): PlannedRequest[] {
  const random = seededRandom(seed);
  const plan: PlannedRequest[] = [{ label: 'health', kind: 'read', method: 'GET', path: '/health', expectStatus: 200, expectEvent: false, expectDeadLetter: false }];
  for (const op of OPERATIONS) {
    // S3 picks its audit by the token count's parity: the odd prompt from S1 takes the sporadic audit,
    // requests entering later carry no count and take the continuous one. Both always run.
    const words = op.system === 's1' && op.operation === 'operation' ? 7 : 6;
    plan.push(generateRequest(`${op.system}.${op.operation}`, 'pipeline', { prompt: prompt(random, words), model: 'small', system: op.system, operation: op.operation }, { expectEvent: op.reachesS4 }));
  }
  plan.push(
    generateRequest('unknown operation s2.teleport', 'unknown-operation', { prompt: prompt(random, 4), system: 's2', operation: 'teleport' }, { expectDeadLetter: true }),
    generateRequest('over budget: s3.control throws', 'handler-throws', { prompt: prompt(random, 40), model: 'tiny' }, { expectDeadLetter: true }),
    generateRequest('400 empty prompt', 'client-error', { prompt: '' }, { expectStatus: 400 }),
    generateRequest('400 unknown system', 'client-error', { prompt: prompt(random, 3), system: 's9' }, { expectStatus: 400 }),
    generateRequest('404 unknown model', 'client-error', { prompt: prompt(random, 3), model: 'gpt-unknown' }, { expectStatus: 404 }),
    generateRequest('422 refused by policy', 'client-error', { prompt: `a forbidden ${prompt(random, 3)}` }, { expectStatus: 422 }),
    generateRequest('502 model service fails', 'server-error', { prompt: prompt(random, 3), model: 'unstable' }, { expectStatus: 502 }),
  );
  const models = ['tiny', 'small', 'large'];
  const mains = OPERATIONS.filter((o) => o.reachesS4);
  for (let i = 0; i < extra; i++) {
    // Mostly the full path from S1, sometimes a later entry.
    const op = random() < 0.6 ? mains[0]! : mains[Math.floor(random() * mains.length)]!;
    const model = models[Math.floor(random() * models.length)]!;
    plan.push(generateRequest(`random #${i + 1} ${op.system}.${op.operation}`, 'pipeline', { prompt: prompt(random, 3 + Math.floor(random() * 10)), model, system: op.system, operation: op.operation }, { expectEvent: true }));
  }
  return plan;
}

/** The second phase, once the first has settled: the shared state it left behind. */
export function planReads(): PlannedRequest[] {
  const read = (label: string, path: string, expectStatus: number): PlannedRequest => ({ label, kind: expectStatus >= 400 ? 'client-error' : 'read', method: 'GET', path, expectStatus, expectEvent: false, expectDeadLetter: false });
  return [
    read('state s5.policy', '/v1/state/s5.policy', 200),
    read('state s1.load', '/v1/state/s1.load', 200),
    read('404 unknown state', '/v1/state/s6.nothing', 404),
  ];
}

async function send(base: string, planned: PlannedRequest): Promise<SentRequest> {
  const started = performance.now();
  try {
    const res = await fetch(`${base}${planned.path}`, {
      method: planned.method,
      headers: planned.body ? { 'content-type': 'application/json' } : {},
      body: planned.body ? JSON.stringify(planned.body) : undefined,
    });
    const text = await res.text();
    let requestId: string | null = null;
    try {
      const parsed = JSON.parse(text) as { requestId?: unknown };
      if (typeof parsed.requestId === 'string') requestId = parsed.requestId;
    } catch {
      // not JSON; nothing to read
    }
    return {
      ...planned,
      status: res.status,
      traceId: res.headers.get('x-trace-id'),
      requestId,
      durationMs: Math.round(performance.now() - started),
      ok: res.status === planned.expectStatus,
    };
  } catch (error) {
    return { ...planned, status: 0, traceId: null, requestId: null, durationMs: Math.round(performance.now() - started), ok: false, error: (error as Error).message };
  }
}

/** Sends the plan with at most `concurrency` requests in flight, in plan order. */
export async function runTraffic(base: string, plan: readonly PlannedRequest[], concurrency = 4): Promise<SentRequest[]> {
  const results = new Array<SentRequest>(plan.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < plan.length) {
      const i = next++;
      results[i] = await send(base, plan[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, plan.length) }, lane));
  return results;
}

/** One server-sent event as the gateway streams it. */
export interface StreamedEvent {
  requestId?: string;
  kind?: string;
  [key: string]: unknown;
}

/** Listens to `GET /v1/events` until `close()`; resolves `opened` once the stream is up. */
export class EventListener {
  readonly events: StreamedEvent[] = [];
  readonly opened: Promise<void>;
  status = 0;
  traceId: string | null = null;
  readonly #abort = new AbortController();
  readonly #done: Promise<void>;
  #waiters: (() => void)[] = [];

  constructor(base: string) {
    let markOpen!: () => void;
    let failOpen!: (error: Error) => void;
    this.opened = new Promise((resolve, reject) => {
      markOpen = resolve;
      failOpen = reject;
    });
    this.#done = (async () => {
      try {
        const res = await fetch(`${base}/v1/events`, { signal: this.#abort.signal, headers: { accept: 'text/event-stream' } });
        this.status = res.status;
        this.traceId = res.headers.get('x-trace-id');
        if (!res.body) throw new Error('event stream has no body');
        markOpen();
        const decoder = new TextDecoder();
        let pending = '';
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          pending += decoder.decode(chunk, { stream: true });
          let end = pending.indexOf('\n\n');
          while (end !== -1) {
            this.#parse(pending.slice(0, end));
            pending = pending.slice(end + 2);
            end = pending.indexOf('\n\n');
          }
        }
      } catch (error) {
        if ((error as Error).name !== 'AbortError') failOpen(error as Error);
      }
    })();
  }

  #parse(block: string): void {
    const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
    if (data === '') return;
    try {
      this.events.push(JSON.parse(data) as StreamedEvent);
    } catch {
      this.events.push({ raw: data });
    }
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Resolves when `predicate` holds over the events so far, or after `timeoutMs`; says which. */
  async waitFor(predicate: (events: readonly StreamedEvent[]) => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.events)) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return true;
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#done;
  }
}
