import { keyString, type DynamicSpan, type DynamicTraces, type FunctionKey } from './formats.js';

/** A transport crossed between a parent span and its child. */
export interface Hop {
  kind: 'message' | 'http';
  via: string;
}

/** A caller -> callee pair as it ran, over all traces. */
export interface ObservedEdge {
  id: string;
  from: FunctionKey & { file: string | null; line: number | null };
  to: FunctionKey & { file: string | null; line: number | null };
  count: number;
  traces: Set<string>;
  seen: Set<string>;
  via: Set<string>;
  hops: Set<Hop['kind']>;
  /** The callee's span named a dispatch operation (`vsm.operation`). */
  operation: boolean;
  /** Services on each side (`service.name`, else the pid). */
  fromService: string;
  toService: string;
}

/**
 * The caller -> callee edges that ran: from each span located at a function to the nearest span
 * above it located at a function. A broker or HTTP hop between the two is recorded on the edge, which
 * so joins the functions on both sides of the transport.
 */
export function collectDynamicEdges(dynamic: DynamicTraces): { edges: ObservedEdge[]; ranFunctions: Set<string> } {
  const observed = new Map<string, ObservedEdge>();
  const ranFunctions = new Set<string>();
  for (const trace of dynamic.traces) {
    const byId = new Map<string, DynamicSpan>();
    for (const s of trace.spans) byId.set(s.span_id, s);
    for (const child of trace.spans) {
      const childKey = locationOf(child);
      if (!childKey) continue;
      ranFunctions.add(keyString(childKey));
      const hops: Hop[] = [];
      let below = child;
      let above = parentOf(below, byId);
      while (above) {
        const hop = hopBetween(above, below);
        if (hop) hops.push(hop);
        if (locationOf(above)) break;
        below = above;
        above = parentOf(below, byId);
      }
      const parentKey = above && locationOf(above);
      if (!above || !parentKey) continue;
      // A function's spans nested in one another are one call, unless a transport lies between them.
      if (keyString(parentKey) === keyString(childKey) && hops.length === 0) continue;
      const id = `${keyString(parentKey)} -> ${keyString(childKey)}`;
      let edge = observed.get(id);
      if (!edge) {
        edge = {
          id, from: parentKey, to: childKey, count: 0, traces: new Set(), seen: new Set(), via: new Set(), hops: new Set(),
          operation: false, fromService: serviceOf(above), toService: serviceOf(child),
        };
        observed.set(id, edge);
      }
      edge.count += 1;
      edge.traces.add(trace.trace_id);
      edge.seen.add(`${processLabel(above)} -> ${processLabel(child)}`);
      for (const hop of hops) {
        edge.hops.add(hop.kind);
        edge.via.add(hop.via);
      }
      const operation = child.metadata?.['vsm.operation'];
      if (operation !== undefined) {
        edge.operation = true;
        edge.via.add(`vsm.operation=${String(operation)}`);
      }
    }
  }
  return { edges: [...observed.values()], ranFunctions };
}

/** The function a span stands for, when it carries the shared key. */
export function locationOf(s: DynamicSpan): (FunctionKey & { file: string | null; line: number | null }) | undefined {
  if (typeof s.module !== 'string' || typeof s.function !== 'string' || typeof s.arity !== 'number') return undefined;
  return { module: s.module, function: s.function, arity: s.arity, file: s.file ?? null, line: s.line ?? null };
}

function parentOf(s: DynamicSpan, byId: Map<string, DynamicSpan>): DynamicSpan | undefined {
  return s.parent_span_id ? byId.get(s.parent_span_id) : undefined;
}

export function attr(s: DynamicSpan, name: string): string | undefined {
  const value = s.metadata?.[name];
  return value === undefined || value === null ? undefined : String(value);
}

/** A transport between a parent span and its child: a broker (producer -> consumer) or HTTP (client -> server). */
export function hopBetween(parent: DynamicSpan, child: DynamicSpan): Hop | undefined {
  const messaging = attr(parent, 'messaging.system') !== undefined || attr(child, 'messaging.system') !== undefined;
  if ((parent.kind === 'producer' && child.kind === 'consumer') || (messaging && parent.kind === 'producer' && child.kind !== 'producer')) {
    const system = attr(parent, 'messaging.system') ?? attr(child, 'messaging.system') ?? 'broker';
    const destination = attr(parent, 'messaging.destination.name') ?? attr(child, 'messaging.destination.name') ?? '?';
    const key = attr(parent, 'messaging.rabbitmq.destination.routing_key') ?? attr(parent, 'messaging.kafka.message.key');
    return { kind: 'message', via: `${system} ${destination}${key ? ` (${key})` : ''}` };
  }
  if (parent.kind === 'client' && child.kind === 'server') {
    const method = attr(child, 'http.request.method') ?? attr(parent, 'http.request.method') ?? '';
    const route = attr(child, 'http.route') ?? attr(child, 'url.path') ?? attr(parent, 'url.full') ?? child.name;
    return { kind: 'http', via: `${method} ${route}`.trim() };
  }
  return undefined;
}

/** `service (pid N)` from the resource attributes the span carries in its metadata. */
export function processLabel(s: DynamicSpan): string {
  const service = attr(s, 'service.name');
  const pid = attr(s, 'process.pid');
  if (service && pid) return `${service} (pid ${pid})`;
  if (pid) return `pid ${pid}`;
  return service ?? 'unknown process';
}

export function serviceOf(s: DynamicSpan): string {
  return attr(s, 'service.name') ?? attr(s, 'process.pid') ?? 'unknown';
}
