import { keyString, type ArcheologyResults, type DynamicTraces, type FunctionKey, type LocatedFunction } from './internal/formats.js';
import { collectDynamicEdges } from './internal/dynamic-edges.js';

/** How an invisible dependency was crossed at run time. */
export type InvisibleKind = 'dynamic-dispatch' | 'message' | 'http' | 'call';

/** A function as the diff names it: the shared key, with its location when either file knows it. */
export interface DiffFunction extends FunctionKey {
  file: string | null;
  line: number | null;
}

/** A caller -> callee pair that ran but that the static graph does not contain. */
export interface InvisibleEdge {
  from: DiffFunction;
  to: DiffFunction;
  kind: InvisibleKind;
  /** How many times the edge ran, over all traces. */
  count: number;
  /** Up to three traces it ran in. */
  trace_ids: string[];
  /** Where it was seen: the processes on each side (`service (pid N) -> service (pid M)`). */
  seen_in: string[];
  /** What carried it: a broker destination, an HTTP route, the dispatch operation, or the span name. */
  via: string[];
}

/** A static edge with no matching run. */
export interface UnexercisedEdge {
  from: FunctionKey;
  to: FunctionKey;
  /** Whether the caller ran at all (a span located at it was seen). */
  caller_ran: boolean;
  callee_ran: boolean;
}

/** The comparison of a static call graph with recorded traces. */
export interface TraceDiff {
  summary: {
    traces: number;
    dynamic_edges: number;
    exercised_static_edges: number;
    static_edges: number;
    invisible_edges: number;
    invisible_by_kind: Record<InvisibleKind, number>;
    unexercised_static_edges: number;
  };
  invisible: InvisibleEdge[];
  unexercised: UnexercisedEdge[];
}

const KIND_ORDER: InvisibleKind[] = ['dynamic-dispatch', 'message', 'http', 'call'];
const MAX_EXAMPLES = 3;

/**
 * Holds what ran against what the static analysis predicted. A dynamic edge runs from a span located
 * at a function to the nearest span located at a function above it; a broker or HTTP hop in between
 * makes it a `message` or `http` edge, attributed to the functions on both sides. An edge the static
 * graph lacks (directly or through a chain of calls) is invisible: `dynamic-dispatch` when the callee
 * was chosen at run time (a `vsm.operation` span, or a function no static call reaches), else `call`.
 *
 * @example
 * ```ts
 * const diff = diffTraces(readArcheology('archeology-results.json'), readDynamic('dynamic-traces.json'));
 * for (const edge of diff.invisible) console.log(edge.kind, edge.from.function, '->', edge.to.function);
 * ```
 */
export function diffTraces(archeology: ArcheologyResults, dynamic: DynamicTraces): TraceDiff {
  const staticIndex = new StaticIndex(archeology);
  const { edges: observedEdges, ranFunctions } = collectDynamicEdges(dynamic);
  const observed = new Map(observedEdges.map((edge) => [edge.id, edge]));

  const invisible: InvisibleEdge[] = [];
  const exercised = new Set<string>();
  for (const [id, edge] of observed) {
    const fromId = keyString(edge.from);
    const toId = keyString(edge.to);
    if (staticIndex.hasEdge(fromId, toId)) {
      exercised.add(id);
      continue;
    }
    let kind: InvisibleKind;
    if (edge.hops.has('message')) kind = 'message';
    else if (edge.hops.has('http')) kind = 'http';
    else if (staticIndex.reaches(fromId, toId)) continue; // ran through functions that carry no span
    else if (edge.operation || !staticIndex.isCallee(toId)) kind = 'dynamic-dispatch';
    else kind = 'call';
    if (edge.via.size === 0) edge.via.add(kind === 'call' ? 'direct call' : 'lookup');
    invisible.push({
      from: staticIndex.describe(edge.from),
      to: staticIndex.describe(edge.to),
      kind,
      count: edge.count,
      trace_ids: [...edge.traces].slice(0, MAX_EXAMPLES),
      seen_in: [...edge.seen].sort(),
      via: [...edge.via].sort(),
    });
  }
  invisible.sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) || b.count - a.count ||
    keyString(a.from).localeCompare(keyString(b.from)) || keyString(a.to).localeCompare(keyString(b.to)));

  const unexercised: UnexercisedEdge[] = [];
  for (const e of archeology.edges ?? []) {
    const fromId = keyString(e.from);
    const toId = keyString(e.to);
    if (exercised.has(`${fromId} -> ${toId}`)) continue;
    unexercised.push({ from: pickKey(e.from), to: pickKey(e.to), caller_ran: ranFunctions.has(fromId), callee_ran: ranFunctions.has(toId) });
  }

  const byKind = { 'dynamic-dispatch': 0, message: 0, http: 0, call: 0 } as Record<InvisibleKind, number>;
  for (const edge of invisible) byKind[edge.kind] += 1;
  return {
    summary: {
      traces: dynamic.traces.length,
      dynamic_edges: observed.size,
      exercised_static_edges: exercised.size,
      static_edges: staticIndex.edgeCount,
      invisible_edges: invisible.length,
      invisible_by_kind: byKind,
      unexercised_static_edges: unexercised.length,
    },
    invisible,
    unexercised,
  };
}

function pickKey(key: FunctionKey): FunctionKey {
  return { module: key.module, function: key.function, arity: key.arity };
}

/** The static graph, indexed for the questions the diff asks. */
class StaticIndex {
  readonly edgeCount: number;
  readonly #edges = new Set<string>();
  readonly #out = new Map<string, string[]>();
  readonly #callees = new Set<string>();
  readonly #located = new Map<string, LocatedFunction>();
  readonly #reach = new Map<string, Set<string>>();

  constructor(results: ArcheologyResults) {
    for (const e of results.edges ?? []) {
      const from = keyString(e.from);
      const to = keyString(e.to);
      const id = `${from} -> ${to}`;
      if (this.#edges.has(id)) continue;
      this.#edges.add(id);
      this.#callees.add(to);
      const list = this.#out.get(from) ?? [];
      list.push(to);
      this.#out.set(from, list);
    }
    this.edgeCount = this.#edges.size;
    const remember = (fn: Partial<LocatedFunction> & FunctionKey): void => {
      if (typeof fn.file === 'string' && typeof fn.line === 'number') this.#located.set(keyString(fn), fn as LocatedFunction);
    };
    for (const ep of results.entry_points) remember(ep);
    for (const t of results.traces) for (const fn of t.functions) remember(fn);
  }

  hasEdge(from: string, to: string): boolean {
    return this.#edges.has(`${from} -> ${to}`);
  }

  isCallee(key: string): boolean {
    return this.#callees.has(key);
  }

  reaches(from: string, to: string): boolean {
    let seen = this.#reach.get(from);
    if (!seen) {
      seen = new Set();
      const queue = [from];
      while (queue.length > 0) {
        for (const next of this.#out.get(queue.pop()!) ?? []) {
          if (!seen.has(next)) {
            seen.add(next);
            queue.push(next);
          }
        }
      }
      this.#reach.set(from, seen);
    }
    return seen.has(to);
  }

  describe(key: FunctionKey & { file?: string | null; line?: number | null }): DiffFunction {
    const known = this.#located.get(keyString(key));
    return {
      module: key.module,
      function: key.function,
      arity: key.arity,
      file: known?.file ?? key.file ?? null,
      line: known?.line ?? key.line ?? null,
    };
  }
}
