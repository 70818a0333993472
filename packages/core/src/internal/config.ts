import { basename } from 'node:path';

/** A propagation format: W3C traceparent/tracestate, B3 single header, B3 multi headers. */
export type PropagationFormat = 'w3c' | 'b3' | 'b3multi';

const FORMATS: readonly PropagationFormat[] = ['w3c', 'b3', 'b3multi'];

export interface Settings {
  sampleRate: number;
  inject: readonly PropagationFormat[];
  extract: readonly PropagationFormat[];
  resource: Readonly<Record<string, string | number>>;
  readTextAsBytes: boolean;
}

function defaultServiceName(): string {
  const fromEnv = process.env.OTEL_SERVICE_NAME ?? process.env.CYB_SERVICE_NAME;
  if (fromEnv) return fromEnv;
  const main = process.argv[1];
  return main ? basename(main).replace(/\.[cm]?[jt]s$/, '') : 'node';
}

function makeResource(serviceName: string): Readonly<Record<string, string | number>> {
  return Object.freeze({ 'service.name': serviceName, 'process.pid': process.pid });
}

export const settings: Settings = {
  sampleRate: 1,
  inject: ['w3c', 'b3'],
  extract: ['w3c', 'b3', 'b3multi'],
  resource: makeResource(defaultServiceName()),
  readTextAsBytes: false,
};

/** Checks a list of formats at setup so that a typo fails fast rather than silently propagating nothing. */
export function checkFormats(formats: readonly string[], option: string): readonly PropagationFormat[] {
  if (!Array.isArray(formats)) throw new TypeError(`${option} must be an array of ${FORMATS.join(', ')}`);
  for (const f of formats) {
    if (!FORMATS.includes(f as PropagationFormat)) {
      throw new TypeError(`${option}: unknown propagation format ${JSON.stringify(f)} (expected ${FORMATS.join(', ')})`);
    }
  }
  return Object.freeze([...formats]) as readonly PropagationFormat[];
}

export interface ConfigureOptions {
  /** Fraction of new traces to record, 0..1, decided by trace id. Default 1. */
  sampleRate?: number;
  /** Formats written by `inject`. Default `['w3c', 'b3']`. */
  inject?: readonly PropagationFormat[];
  /** Formats read by `extract`, in order. Default `['w3c', 'b3', 'b3multi']`. */
  extract?: readonly PropagationFormat[];
  /** `service.name` of spans from this process. Default `OTEL_SERVICE_NAME` or the main script's name. */
  serviceName?: string;
  /**
   * Hash trace ids in the Collector, and check the ids of span contexts made elsewhere, by writing
   * them into a byte buffer instead of reading their characters with `charCodeAt`. Slower than
   * `charCodeAt` where `String.prototype` is in fast mode, as this package keeps it. Default false.
   */
  readTextAsBytes?: boolean;
}

/**
 * Sets process-wide defaults for sampling, propagation formats and the service name.
 *
 * @example
 * configure({ sampleRate: 0.1, inject: ['w3c'], serviceName: 'gateway' });
 */
export function configure(options: ConfigureOptions): void {
  if (options.sampleRate !== undefined) {
    const rate = options.sampleRate;
    if (typeof rate !== 'number' || !(rate >= 0 && rate <= 1)) {
      throw new RangeError(`sampleRate must be a number between 0 and 1, got ${String(rate)}`);
    }
    settings.sampleRate = rate;
  }
  if (options.inject !== undefined) settings.inject = checkFormats(options.inject, 'inject');
  if (options.extract !== undefined) settings.extract = checkFormats(options.extract, 'extract');
  if (options.serviceName !== undefined) {
    if (typeof options.serviceName !== 'string' || options.serviceName === '') {
      throw new TypeError('serviceName must be a non-empty string');
    }
    settings.resource = makeResource(options.serviceName);
  }
  if (options.readTextAsBytes !== undefined) {
    if (typeof options.readTextAsBytes !== 'boolean') throw new TypeError('readTextAsBytes must be a boolean');
    settings.readTextAsBytes = options.readTextAsBytes;
  }
}
