/**
 * The two file formats as the CLI reads and writes them (snake_case, as on disk).
 * The JSON Schemas in @cyb/core are the authority; these types mirror them for the compiler.
 */

/** The shared key of a function: two entries with the same key are the same function. */
export interface FunctionKey {
  module: string;
  function: string;
  arity: number;
}

/** A function with its location in the project. */
export interface LocatedFunction extends FunctionKey {
  file: string;
  line: number;
}

export type EntryPointType = 'http' | 'amqp' | 'kafka' | 'redis' | 'cli' | 'timer';

export interface ArcheologyEntryPoint extends LocatedFunction {
  id: string;
  type: EntryPointType | string;
  metadata: Record<string, unknown>;
}

export interface ArcheologyFunction extends LocatedFunction {
  type: 'public' | 'private' | string;
}

export interface ArcheologyTrace {
  entry_point_id: string;
  functions: ArcheologyFunction[];
  depth: number;
  metadata: Record<string, unknown>;
}

export interface ArcheologyEdge {
  from: FunctionKey;
  to: FunctionKey;
}

export interface ArcheologyResults {
  summary: {
    entry_point_count: number;
    trace_count: number;
    shared_module_count: number;
    orphan_function_count: number;
  };
  entry_points: ArcheologyEntryPoint[];
  traces: ArcheologyTrace[];
  edges: ArcheologyEdge[];
}

export interface DynamicSpan {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  name: string;
  kind?: string;
  module?: string | null;
  function?: string | null;
  arity?: number | null;
  file?: string | null;
  line?: number | null;
  timestamp: number;
  duration_us: number;
  status?: { code: string; message?: string } | string;
  metadata?: Record<string, unknown>;
  [extra: string]: unknown;
}

export interface DynamicTrace {
  trace_id: string;
  entry_point: ({ type: string } & Partial<FunctionKey>) | null;
  spans: DynamicSpan[];
  span_count: number;
}

export interface DynamicTraces {
  traces: DynamicTrace[];
  summary: {
    trace_count: number;
    total_spans: number;
    entry_points_covered: string[];
    dropped_spans?: number;
    evicted_traces?: number;
    sampled_out?: number;
    [extra: string]: unknown;
  };
}

/** `module/function/arity` as one string, for maps and sets. */
export function keyString(key: FunctionKey): string {
  return `${key.module}#${key.function}/${key.arity}`;
}
