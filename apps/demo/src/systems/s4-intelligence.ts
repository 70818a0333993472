import type { DispatchContext } from '@cyb/vsm';
import type { Producer } from 'kafkajs';
import type { GenerationRequest, SystemDeps } from './request.js';

/** An insight or forecast as S4 publishes it to Kafka and the gateway streams it. */
export interface Insight {
  kind: 'insight' | 'forecast';
  requestId: string;
  model: string;
  tokens: number;
  text: string;
}

/** System 4, intelligence: looks outward; publishes what it learns to Kafka and informs policy. */
export class Intelligence {
  readonly #producer: Producer;
  readonly #topic: string;

  constructor(_deps: SystemDeps, producer: Producer, topic: string) {
    this.#producer = producer;
    this.#topic = topic;
  }

  /**
   * `s4.intelligence`: the main path. Publishes the result as an insight, then tells S5. Messages are
   * keyed by model, so one model's insights stay in order on one partition.
   */
  async intelligence(request: GenerationRequest, ctx: DispatchContext): Promise<{ published: string }> {
    const insight: Insight = { kind: 'insight', requestId: request.requestId, model: request.model, tokens: request.tokens ?? 0, text: request.draft ?? '' };
    await this.#producer.send({ topic: this.#topic, messages: [{ key: request.model, value: JSON.stringify(insight) }] });
    await ctx.send('s5', 'policy', { requestId: request.requestId, tokens: insight.tokens });
    return { published: this.#topic };
  }

  /** `s4.forecast`: a projection of demand, published the same way. */
  async forecast(request: GenerationRequest): Promise<{ published: string }> {
    const tokens = request.tokens ?? request.prompt.split(/\s+/).length;
    const forecast: Insight = { kind: 'forecast', requestId: request.requestId, model: request.model, tokens, text: `expect ${tokens * 10} tokens in the next hour` };
    await this.#producer.send({ topic: this.#topic, messages: [{ key: request.model, value: JSON.stringify(forecast) }] });
    return { published: this.#topic };
  }
}
