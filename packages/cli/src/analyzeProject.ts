import { ProjectGraph, type FunctionNode } from './internal/static/ProjectGraph.js';
import type {
  ArcheologyEdge, ArcheologyEntryPoint, ArcheologyFunction, ArcheologyResults, ArcheologyTrace, FunctionKey,
} from './internal/formats.js';

/** Options of {@link analyzeProject}. */
export interface AnalyzeProjectOptions {
  /** Directory names to skip besides `node_modules`, `dist`, `build`, `out`, `coverage` and hidden ones. */
  ignore?: readonly string[];
}

/**
 * The static call graph of a TypeScript or JavaScript project, in the `archeology-results.json`
 * shape: entry points (HTTP routes, broker consumers, CLI commands, timers), the functions reachable
 * from each, the caller -> callee edges the type checker resolves, and summary counts.
 *
 * @example
 * ```ts
 * const results = analyzeProject('./services/orders');
 * console.log(results.summary.entry_point_count, results.edges.length);
 * ```
 */
export function analyzeProject(dir: string, options: AnalyzeProjectOptions = {}): ArcheologyResults {
  const graph = new ProjectGraph(dir, options.ignore ? { ignore: options.ignore } : {});

  const findings = [...graph.entryPoints].sort((a, b) => a.order[0] - b.order[0] || a.order[1] - b.order[1]);
  const perType = new Map<string, number>();
  const entryPoints: { entry: ArcheologyEntryPoint; node: FunctionNode }[] = [];
  for (const finding of findings) {
    const node = graph.nodeOf(finding.fn);
    if (!node) continue;
    const n = perType.get(finding.type) ?? 0;
    perType.set(finding.type, n + 1);
    entryPoints.push({ entry: { id: `${finding.type}_${n}`, type: finding.type, ...node.key, metadata: finding.metadata }, node });
  }

  const reachedAnywhere = new Set<FunctionNode>();
  const modulesPerTrace = new Map<string, number>();
  const traces: ArcheologyTrace[] = entryPoints.map(({ entry, node }) => {
    const reached = reachableFrom(graph, node);
    const modules = new Set<string>();
    for (const fn of reached) {
      reachedAnywhere.add(fn);
      modules.add(fn.key.module);
    }
    for (const m of modules) modulesPerTrace.set(m, (modulesPerTrace.get(m) ?? 0) + 1);
    return {
      entry_point_id: entry.id,
      functions: reached.map(toArcheologyFunction),
      depth: longestChain(graph, node),
      metadata: { entry_point_type: entry.type },
    };
  });

  const edges: ArcheologyEdge[] = [];
  for (const [from, targets] of graph.edges) {
    for (const to of targets) edges.push({ from: keyOf(from), to: keyOf(to) });
  }
  edges.sort((a, b) => compareKeys(a.from, b.from) || compareKeys(a.to, b.to));

  return {
    summary: {
      entry_point_count: entryPoints.length,
      trace_count: traces.length,
      shared_module_count: [...modulesPerTrace.values()].filter((count) => count > 1).length,
      orphan_function_count: graph.functions.filter((fn) => !reachedAnywhere.has(fn)).length,
    },
    entry_points: entryPoints.map(({ entry }) => entry),
    traces,
    edges,
  };
}

function toArcheologyFunction(fn: FunctionNode): ArcheologyFunction {
  return { ...fn.key, type: fn.visibility };
}

function keyOf(fn: FunctionNode): FunctionKey {
  return { module: fn.key.module, function: fn.key.function, arity: fn.key.arity };
}

function compareKeys(a: FunctionKey, b: FunctionKey): number {
  return a.module.localeCompare(b.module) || a.function.localeCompare(b.function) || a.arity - b.arity;
}

/** Breadth-first, so the entry point comes first and nearer functions before farther ones. */
function reachableFrom(graph: ProjectGraph, start: FunctionNode): FunctionNode[] {
  const order: FunctionNode[] = [start];
  const seen = new Set([start]);
  for (let i = 0; i < order.length; i++) {
    const targets = [...(graph.edges.get(order[i]!) ?? [])].sort((a, b) => a.index - b.index);
    for (const next of targets) {
      if (!seen.has(next)) {
        seen.add(next);
        order.push(next);
      }
    }
  }
  return order;
}

/**
 * The number of functions on the longest call chain from `start`, recursion not unrolled:
 * an edge back into a function already on the chain ends that chain.
 */
function longestChain(graph: ProjectGraph, start: FunctionNode): number {
  const memo = new Map<FunctionNode, number>();
  const onPath = new Set<FunctionNode>();
  const walk = (fn: FunctionNode): number => {
    const known = memo.get(fn);
    if (known !== undefined) return known;
    onPath.add(fn);
    let best = 0;
    for (const next of graph.edges.get(fn) ?? []) {
      if (onPath.has(next)) continue;
      best = Math.max(best, walk(next));
    }
    onPath.delete(fn);
    memo.set(fn, best + 1);
    return best + 1;
  };
  return walk(start);
}
