/**
 * Span names `<verb> <destination>` (`send orders`, `process jobs`), made once per destination so that
 * every span of one destination shares one string rather than each keeping a fresh one. Bounded: past
 * `max` destinations (a program that names a queue per message) names are made on each call.
 *
 * @example
 * const sendNames = new SpanNames('send');
 * const span = startSpan(sendNames.of(topic), { kind: 'producer' });
 */
export class SpanNames {
  readonly #verb: string;
  readonly #max: number;
  readonly #byDestination = new Map<string, string>();

  constructor(verb: string, max = 1024) {
    this.#verb = verb;
    this.#max = max;
  }

  of(destination: string): string {
    const known = this.#byDestination.get(destination);
    if (known !== undefined) return known;
    const made = `${this.#verb} ${destination}`;
    if (this.#byDestination.size < this.#max) this.#byDestination.set(destination, made);
    return made;
  }
}
