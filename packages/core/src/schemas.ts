// JSON Schemas (draft 2020-12 subset that ajv's default draft-07 mode also reads) of the two files
// described in formats/README.md. Unknown extra fields are allowed so the formats can grow.

const nullableString = { type: ['string', 'null'] } as const;
const nullableInt = { type: ['integer', 'null'], minimum: 0 } as const;
const functionKey = {
  type: 'object',
  required: ['module', 'function', 'arity'],
  properties: {
    module: { type: 'string', minLength: 1 },
    function: { type: 'string', minLength: 1 },
    arity: { type: 'integer', minimum: 0 },
  },
} as const;

/** JSON Schema of `dynamic-traces.json`. */
export const dynamicTracesSchema = {
  $id: 'https://cybernetic-trace.dev/schemas/dynamic-traces.json',
  title: 'dynamic-traces.json',
  type: 'object',
  required: ['traces', 'summary'],
  properties: {
    traces: {
      type: 'array',
      items: {
        type: 'object',
        required: ['trace_id', 'entry_point', 'spans', 'span_count'],
        properties: {
          trace_id: { type: 'string', pattern: '^[0-9a-f]{32}$' },
          entry_point: {
            type: 'object',
            required: ['type', 'module', 'function', 'arity'],
            properties: { type: { type: 'string', minLength: 1 }, module: nullableString, function: nullableString, arity: nullableInt },
          },
          spans: {
            type: 'array',
            items: {
              type: 'object',
              required: ['trace_id', 'span_id', 'parent_span_id', 'name', 'kind', 'module', 'function', 'arity', 'file', 'line', 'timestamp', 'duration_us', 'metadata'],
              properties: {
                trace_id: { type: 'string', pattern: '^[0-9a-f]{32}$' },
                span_id: { type: 'string', pattern: '^[0-9a-f]{16}$' },
                parent_span_id: { type: ['string', 'null'], pattern: '^[0-9a-f]{16}$' },
                name: { type: 'string' },
                kind: { enum: ['internal', 'server', 'client', 'producer', 'consumer'] },
                module: nullableString,
                function: nullableString,
                arity: nullableInt,
                file: nullableString,
                line: { type: ['integer', 'null'], minimum: 1 },
                timestamp: { type: 'integer', minimum: 0 },
                duration_us: { type: 'integer', minimum: 0 },
                status: { enum: ['unset', 'ok', 'error'] },
                metadata: { type: 'object' },
              },
            },
          },
          span_count: { type: 'integer', minimum: 0 },
        },
      },
    },
    summary: {
      type: 'object',
      required: ['trace_count', 'total_spans', 'entry_points_covered', 'dropped_spans', 'evicted_traces', 'sampled_out'],
      properties: {
        trace_count: { type: 'integer', minimum: 0 },
        total_spans: { type: 'integer', minimum: 0 },
        entry_points_covered: { type: 'array', items: { type: 'string' } },
        dropped_spans: { type: 'integer', minimum: 0 },
        evicted_traces: { type: 'integer', minimum: 0 },
        sampled_out: { type: 'integer', minimum: 0 },
      },
    },
  },
} as const;

/** JSON Schema of `archeology-results.json`. */
export const archeologyResultsSchema = {
  $id: 'https://cybernetic-trace.dev/schemas/archeology-results.json',
  title: 'archeology-results.json',
  type: 'object',
  required: ['summary', 'entry_points', 'traces'],
  properties: {
    summary: {
      type: 'object',
      required: ['entry_point_count', 'trace_count'],
      properties: {
        entry_point_count: { type: 'integer', minimum: 0 },
        trace_count: { type: 'integer', minimum: 0 },
        shared_module_count: { type: 'integer', minimum: 0 },
        orphan_function_count: { type: 'integer', minimum: 0 },
      },
    },
    entry_points: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'type', 'module', 'function', 'arity'],
        properties: {
          id: { type: 'string', minLength: 1 },
          type: { type: 'string', minLength: 1 },
          module: { type: 'string' },
          function: { type: 'string' },
          arity: { type: 'integer', minimum: 0 },
          file: { type: 'string' },
          line: { type: 'integer', minimum: 1 },
          metadata: { type: 'object' },
        },
      },
    },
    traces: {
      type: 'array',
      items: {
        type: 'object',
        required: ['entry_point_id', 'functions', 'depth'],
        properties: {
          entry_point_id: { type: 'string' },
          functions: {
            type: 'array',
            items: {
              type: 'object',
              required: ['module', 'function', 'arity'],
              properties: {
                module: { type: 'string' },
                function: { type: 'string' },
                arity: { type: 'integer', minimum: 0 },
                file: { type: 'string' },
                line: { type: 'integer', minimum: 1 },
                type: { type: 'string' },
              },
            },
          },
          depth: { type: 'integer', minimum: 0 },
          metadata: { type: 'object' },
        },
      },
    },
    edges: {
      type: 'array',
      items: { type: 'object', required: ['from', 'to'], properties: { from: functionKey, to: functionKey } },
    },
  },
} as const;
