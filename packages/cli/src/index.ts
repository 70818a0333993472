// Public API of @cyb/cli: the command line as a function, and the pieces behind its commands.
export { runCli } from './runCli.js';
export { analyzeProject } from './analyzeProject.js';
export { diffTraces } from './diffTraces.js';
export { renderReport } from './renderReport.js';
export { OtlpReceiver } from './OtlpReceiver.js';
export { probeBrokers } from './probeBrokers.js';

// Options and results
export type { RunCliOptions } from './runCli.js';
export type { AnalyzeProjectOptions } from './analyzeProject.js';
export type { TraceDiff, InvisibleEdge, InvisibleKind, UnexercisedEdge, DiffFunction } from './diffTraces.js';
export type { RenderReportOptions } from './renderReport.js';
export type { OtlpReceiverOptions, OtlpReceiverStats } from './OtlpReceiver.js';
export type { ProbeTarget, ProbeResult, ProbeOptions } from './probeBrokers.js';

// The two file formats, as read and written
export type {
  ArcheologyResults, ArcheologyEntryPoint, ArcheologyEdge, ArcheologyTrace, ArcheologyFunction,
  DynamicTraces, DynamicTrace, DynamicSpan, FunctionKey, LocatedFunction,
} from './internal/formats.js';
