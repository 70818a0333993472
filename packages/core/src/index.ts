// Spans and context
export { span, startSpan, currentSpan, activeContext, contextWithSpan, withContext, spanContextOf, rootContext, SAMPLING_DECISION_KEY } from './span.js';
export { CybSpan } from './CybSpan.js';
export { SpanNames } from './span-names.js';
export { shallowCopy } from './shallow-copy.js';
export type { SpanMeta, StartSpanOptions } from './span.js';
export type { Attributes, AttributeValue, Context, Link, Span, SpanContext } from '@opentelemetry/api';
export type { CodeLocation, EventRecord, LinkRecord, SpanKind, SpanRecord, SpanStatusRecord } from './CybSpan.js';

// Channels
export { SPAN_CHANNEL, spanChannel, onSpanEnd, onSpanStart, hasSpanSubscribers } from './internal/channel.js';
export type { SpanMessage } from './internal/channel.js';
export { attach, detach, attachStats } from './attach.js';
export type { ChannelHandler } from './attach.js';

// Configuration and propagation
export { configure } from './internal/config.js';
export type { ConfigureOptions, PropagationFormat } from './internal/config.js';
export { inject, extract, propagationStats, resetPropagationStats, propagationFormats, defaultGetter, defaultSetter } from './propagation.js';
export type { CarrierGetter, CarrierSetter, ExtractOptions, InjectOptions, PropagationStats } from './propagation.js';

// Collector and formats
export { Collector } from './Collector.js';
export type { CollectedTrace, CollectorOptions, CollectorStats } from './Collector.js';
export { toDynamicTraces, writeDynamicTraces, writeJsonAtomic } from './formats.js';
export type { DynamicEntryPoint, DynamicSpan, DynamicTrace, DynamicTracesDocument, ToDynamicTracesOptions } from './formats.js';
export { dynamicTracesSchema, archeologyResultsSchema } from './schemas.js';

// OTLP
export { OtlpHttpExporter, OtlpDecodeError, toOtlpJson, fromOtlpJson } from './otlp.js';
export type { OtlpExporterStats, OtlpHttpExporterOptions } from './otlp.js';
