import { diffTraces, type InvisibleKind } from './diffTraces.js';
import { attr, collectDynamicEdges, hopBetween, processLabel } from './internal/dynamic-edges.js';
import { keyString, type ArcheologyResults, type DynamicSpan, type DynamicTrace, type DynamicTraces } from './internal/formats.js';

/** Options of {@link renderReport}. */
export interface RenderReportOptions {
  /** A static call graph: edges that ran but are not in it are highlighted as invisible. */
  archeology?: ArcheologyResults;
  title?: string;
}

const ROW_HEIGHT = 22;
const LANE_HEADER = 22;
const WATERFALL_LABEL_WIDTH = 300;
const WATERFALL_WIDTH = 1100;

/**
 * One self-contained HTML page (inline CSS, JS and SVG; nothing fetched) for a `dynamic-traces.json`:
 * the list of traces, a waterfall per trace with a lane per process and the transport hops marked,
 * and a dependency graph of the functions and services that ran, with invisible edges highlighted
 * when a static call graph is given.
 *
 * @example
 * ```ts
 * writeFileSync('report.html', renderReport(dynamic, { archeology }));
 * ```
 */
export function renderReport(dynamic: DynamicTraces, options: RenderReportOptions = {}): string {
  const title = options.title ?? 'Cybernetic Trace report';
  const s = dynamic.summary;
  const processes = new Set<string>();
  for (const t of dynamic.traces) for (const span of t.spans) processes.add(processLabel(span));
  const facts: [string, string | number][] = [
    ['traces', s.trace_count], ['spans', s.total_spans], ['processes', processes.size],
    ['entry points', s.entry_points_covered.join(', ') || 'none'],
    ['dropped spans', s.dropped_spans ?? 0], ['evicted traces', s.evicted_traces ?? 0], ['sampled out', s.sampled_out ?? 0],
  ];
  const body = [
    `<header><h1>${esc(title)}</h1><dl class="facts">${facts.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${esc(String(v))}</dd></div>`).join('')}</dl></header>`,
    '<main>',
    renderTraceList(dynamic.traces),
    '<section id="waterfalls"><h2>Waterfall</h2>',
    dynamic.traces.length === 0 ? '<p class="empty">No traces were recorded.</p>' : '',
    ...dynamic.traces.map((t, i) => renderWaterfall(t, i === 0)),
    '</section>',
    renderGraph(dynamic, options.archeology),
    '</main>',
  ].join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>${esc(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<svg class="defs" width="0" height="0" aria-hidden="true"><defs>
<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"></path></marker>
<marker id="dep-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"></path></marker>
</defs></svg>
${body}
<script>${SCRIPT}</script>
</body>
</html>
`;
}

function renderTraceList(traces: readonly DynamicTrace[]): string {
  const rows = traces.map((t, i) => {
    const start = Math.min(...t.spans.map((s) => s.timestamp));
    const end = Math.max(...t.spans.map((s) => s.timestamp + s.duration_us));
    const procs = new Set(t.spans.map(processLabel));
    const errors = t.spans.filter((s) => spanFailed(s)).length;
    const ep = t.entry_point;
    const entry = ep ? `${ep.type}${ep.function ? ` · ${ep.module ?? ''}:${ep.function}` : ''}` : '';
    const name = (ep as { name?: string } | null)?.name ?? t.spans[0]?.name ?? '';
    return `<tr class="trace-row${i === 0 ? ' selected' : ''}" data-trace-id="${esc(t.trace_id)}" tabindex="0">` +
      `<td class="mono">${esc(t.trace_id)}</td><td>${esc(name)}</td><td>${esc(entry)}</td>` +
      `<td class="span-count num">${t.spans.length}</td><td class="num">${esc(formatUs(end - start))}</td>` +
      `<td class="num">${procs.size}</td><td class="num${errors ? ' error' : ''}">${errors}</td></tr>`;
  });
  return `<section id="traces"><h2>Traces <span class="muted">(${traces.length})</span></h2>
<input id="filter" type="search" placeholder="filter by trace id, name or entry point" aria-label="filter traces">
<table class="trace-list"><thead><tr><th>trace id</th><th>root span</th><th>entry point</th><th>spans</th><th>duration</th><th>processes</th><th>errors</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table></section>`;
}

function spanFailed(s: DynamicSpan): boolean {
  return s.status === 'error' || (typeof s.status === 'object' && s.status?.code === 'error');
}

/** A lane per process, a row per span in start order within its lane, bars on one time axis. */
function renderWaterfall(trace: DynamicTrace, visible: boolean): string {
  const spans = [...trace.spans].sort((a, b) => a.timestamp - b.timestamp);
  const t0 = Math.min(...spans.map((s) => s.timestamp));
  const t1 = Math.max(...spans.map((s) => s.timestamp + s.duration_us));
  const total = Math.max(1, t1 - t0);
  const lanes = new Map<string, DynamicSpan[]>();
  for (const s of spans) {
    const lane = processLabel(s);
    const list = lanes.get(lane) ?? [];
    list.push(s);
    lanes.set(lane, list);
  }
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const depthOf = (s: DynamicSpan): number => {
    let depth = 0;
    let current = s;
    while (current.parent_span_id && byId.has(current.parent_span_id) && depth < 64) {
      current = byId.get(current.parent_span_id)!;
      depth += 1;
    }
    return depth;
  };
  const x = (us: number): number => WATERFALL_LABEL_WIDTH + ((us - t0) / total) * (WATERFALL_WIDTH - WATERFALL_LABEL_WIDTH - 10);
  const rowY = new Map<string, number>();
  const parts: string[] = [];
  let y = 0;
  let laneIndex = 0;
  for (const [lane, laneSpans] of lanes) {
    const height = LANE_HEADER + laneSpans.length * ROW_HEIGHT;
    parts.push(`<g class="lane" data-process="${esc(lane)}"><rect class="lane-bg lane-${laneIndex % 6}" x="0" y="${y}" width="${WATERFALL_WIDTH}" height="${height}"></rect>` +
      `<text class="lane-label" x="6" y="${y + 15}">${esc(lane)}</text></g>`);
    y += LANE_HEADER;
    for (const s of laneSpans) {
      const indent = Math.min(depthOf(s), 12) * 10;
      const bx = x(s.timestamp);
      const bw = Math.max(2, x(s.timestamp + s.duration_us) - bx);
      const located = typeof s.function === 'string' ? ` · ${s.module}:${s.function}` : '';
      const parent = s.parent_span_id ? byId.get(s.parent_span_id) : undefined;
      const hop = parent && (hopBetween(parent, s) ?? (processLabel(parent) !== lane ? { kind: 'process', via: 'another process' } : undefined));
      const cls = `span-bar kind-${esc(s.kind ?? 'internal')}${spanFailed(s) ? ' failed' : ''}${hop ? ' hop-target' : ''}`;
      const tip = [`${s.name}${located}`, `${formatUs(s.duration_us)} at +${formatUs(s.timestamp - t0)}`, `kind ${s.kind ?? 'internal'}`,
        ...Object.entries(s.metadata ?? {}).slice(0, 12).map(([k, v]) => `${k}: ${String(v)}`)].join('\n');
      parts.push(`<g class="span-row" data-span-id="${esc(s.span_id)}">` +
        `<text class="span-label" x="${8 + indent}" y="${y + 15}">${esc(truncate(s.name, 38 - indent / 10))}</text>` +
        `<rect class="${cls}" x="${bx.toFixed(1)}" y="${y + 4}" width="${bw.toFixed(1)}" height="${ROW_HEIGHT - 8}" rx="2"><title>${esc(tip)}</title></rect>` +
        // The duration goes right of the bar, or left of it when the bar ends near the edge.
        (bx + bw + 70 < WATERFALL_WIDTH
          ? `<text class="span-duration" x="${(bx + bw + 4).toFixed(1)}" y="${y + 15}">${esc(formatUs(s.duration_us))}</text></g>`
          : `<text class="span-duration" text-anchor="end" x="${(bx - 4).toFixed(1)}" y="${y + 15}">${esc(formatUs(s.duration_us))}</text></g>`));
      rowY.set(s.span_id, y);
      y += ROW_HEIGHT;
    }
    laneIndex += 1;
  }
  // Transport hops: an arrow from the sending span to the span that received it.
  const hops: string[] = [];
  for (const s of spans) {
    const parent = s.parent_span_id ? byId.get(s.parent_span_id) : undefined;
    if (!parent) continue;
    const hop = hopBetween(parent, s);
    const crossProcess = processLabel(parent) !== processLabel(s);
    if (!hop && !crossProcess) continue;
    const py = rowY.get(parent.span_id)! + ROW_HEIGHT / 2;
    const cy = rowY.get(s.span_id)! + ROW_HEIGHT / 2;
    const px = x(parent.timestamp);
    const cx = x(s.timestamp);
    const label = hop ? `${hop.kind}: ${hop.via}` : 'across processes';
    hops.push(`<g class="hop hop-${hop?.kind ?? 'process'}"><path d="M${px.toFixed(1)},${py} C${(px - 20).toFixed(1)},${((py + cy) / 2).toFixed(1)} ${(cx - 20).toFixed(1)},${((py + cy) / 2).toFixed(1)} ${cx.toFixed(1)},${cy}" marker-end="url(#arrow)"></path>` +
      `<text text-anchor="middle" x="${Math.min(Math.max((px + cx) / 2, WATERFALL_LABEL_WIDTH + 120), WATERFALL_WIDTH - 160).toFixed(1)}" y="${((py + cy) / 2 - 4).toFixed(1)}">${esc(label)}</text></g>`);
  }
  const height = y + 4;
  return `<figure class="waterfall" id="trace-${esc(trace.trace_id)}" data-trace-id="${esc(trace.trace_id)}" data-span-count="${spans.length}"${visible ? '' : ' hidden'}>
<figcaption><span class="mono">${esc(trace.trace_id)}</span> · ${spans.length} spans · ${esc(formatUs(total))} · ${lanes.size} process${lanes.size === 1 ? '' : 'es'}${hops.length ? ` · ${hops.length} hop${hops.length === 1 ? '' : 's'}` : ''}</figcaption>
<svg class="waterfall-svg" viewBox="0 0 ${WATERFALL_WIDTH} ${height}" width="${WATERFALL_WIDTH}" height="${height}" role="img" aria-label="waterfall of trace ${esc(trace.trace_id)}">
${parts.join('\n')}
${hops.join('\n')}
</svg></figure>`;
}

interface GraphNode {
  id: string;
  label: string;
  sub: string;
  service: string;
  layer: number;
  order: number;
}

/** Functions that ran, as boxes in layers from callers to callees; invisible edges drawn apart. */
function renderGraph(dynamic: DynamicTraces, archeology: ArcheologyResults | undefined): string {
  const { edges } = collectDynamicEdges(dynamic);
  const nodes = new Map<string, GraphNode>();
  const services = new Set<string>();
  for (const t of dynamic.traces) {
    for (const s of t.spans) {
      if (typeof s.module !== 'string' || typeof s.function !== 'string' || typeof s.arity !== 'number') continue;
      const id = keyString({ module: s.module, function: s.function, arity: s.arity });
      if (nodes.has(id)) continue;
      const service = attr(s, 'service.name') ?? attr(s, 'process.pid') ?? 'unknown';
      services.add(service);
      nodes.set(id, { id, label: `${s.function}/${s.arity}`, sub: s.module, service, layer: 0, order: 0 });
    }
  }
  const invisible = new Map<string, InvisibleKind>();
  if (archeology) {
    for (const e of diffTraces(archeology, dynamic).invisible) invisible.set(`${keyString(e.from)} -> ${keyString(e.to)}`, e.kind);
  }
  // Longest-path layering; an edge back into the current path (recursion, request/reply) is ignored.
  const out = new Map<string, string[]>();
  for (const e of edges) {
    const from = keyString(e.from);
    const list = out.get(from) ?? [];
    list.push(keyString(e.to));
    out.set(from, list);
  }
  const incoming = new Set(edges.map((e) => keyString(e.to)));
  const onPath = new Set<string>();
  const place = (id: string, layer: number): void => {
    const node = nodes.get(id);
    if (!node || onPath.has(id) || (node.layer >= layer && layer > 0)) return;
    node.layer = Math.max(node.layer, layer);
    onPath.add(id);
    for (const next of out.get(id) ?? []) place(next, node.layer + 1);
    onPath.delete(id);
  };
  const roots = [...nodes.keys()].filter((id) => !incoming.has(id));
  for (const id of roots.length > 0 ? roots : [...nodes.keys()].slice(0, 1)) place(id, 0);
  const layers = new Map<number, GraphNode[]>();
  for (const node of nodes.values()) {
    const list = layers.get(node.layer) ?? [];
    list.push(node);
    layers.set(node.layer, list);
  }
  const colW = 300;
  const rowH = 72;
  const boxW = 210;
  const boxH = 40;
  let maxRows = 0;
  for (const list of layers.values()) {
    list.sort((a, b) => a.service.localeCompare(b.service) || a.sub.localeCompare(b.sub) || a.label.localeCompare(b.label));
    list.forEach((n, i) => (n.order = i));
    maxRows = Math.max(maxRows, list.length);
  }
  const serviceIndex = new Map([...services].sort().map((s, i) => [s, i]));
  const width = Math.max(400, layers.size * colW + 40);
  const height = Math.max(120, maxRows * rowH + 50);
  const pos = (n: GraphNode): { x: number; y: number } => ({ x: 20 + n.layer * colW, y: 30 + n.order * rowH });
  const edgeSvg = edges.map((e) => {
    const a = nodes.get(keyString(e.from));
    const b = nodes.get(keyString(e.to));
    if (!a || !b) return '';
    const pa = pos(a);
    const pb = pos(b);
    const kind = invisible.get(e.id);
    const transport = e.hops.has('message') ? 'message' : e.hops.has('http') ? 'http' : 'call';
    const x1 = pa.x + boxW;
    const y1 = pa.y + boxH / 2;
    const x2 = pb.x;
    const y2 = pb.y + boxH / 2;
    const back = x2 <= x1;
    const d = back
      ? `M${x1},${y1} C${x1 + 60},${y1 - 70} ${x2 - 60},${y2 - 70} ${x2},${y2}`
      : `M${x1},${y1} C${(x1 + x2) / 2},${y1} ${(x1 + x2) / 2},${y2} ${x2},${y2}`;
    const label = kind ?? (transport === 'call' ? '' : transport);
    const title = `${e.from.module}:${e.from.function} -> ${e.to.module}:${e.to.function}\n${e.count} run(s)${kind ? `\ninvisible: ${kind}` : ''}${e.via.size ? `\nvia ${[...e.via].join(', ')}` : ''}`;
    return `<g class="dep-edge ${kind ? `invisible invisible-${kind}` : 'visible'} transport-${transport}" data-kind="${esc(kind ?? '')}"><path d="${d}" marker-end="url(#dep-arrow)"></path>` +
      (label ? `<text text-anchor="middle" x="${((x1 + x2) / 2).toFixed(0)}" y="${(Math.min(y1, y2) - 6).toFixed(0)}">${esc(label)}</text>` : '') +
      `<title>${esc(title)}</title></g>`;
  }).join('\n');
  const nodeSvg = [...nodes.values()].map((n) => {
    const p = pos(n);
    return `<g class="dep-node service-${(serviceIndex.get(n.service) ?? 0) % 6}" data-function="${esc(n.id)}"><rect x="${p.x}" y="${p.y}" width="${boxW}" height="${boxH}" rx="6"></rect>` +
      `<text x="${p.x + 8}" y="${p.y + 16}" class="fn">${esc(truncate(n.label, 30))}</text>` +
      `<text x="${p.x + 8}" y="${p.y + 32}" class="mod">${esc(truncate(`${n.service} · ${n.sub}`, 34))}</text>` +
      `<title>${esc(`${n.sub}:${n.label}\nservice ${n.service}`)}</title></g>`;
  }).join('\n');
  const legend = archeology
    ? `<p class="legend"><span class="swatch invisible"></span> invisible to the static graph (${invisible.size}) <span class="swatch visible"></span> in the static graph</p>`
    : '<p class="legend muted">Give <code>--static archeology-results.json</code> to highlight invisible edges.</p>';
  const serviceLegend = [...serviceIndex].map(([s, i]) => `<span class="svc service-${i % 6}">${esc(s)}</span>`).join(' ');
  return `<section id="graph"><h2>Dependency graph <span class="muted">(${nodes.size} functions, ${edges.length} edges)</span></h2>
${legend}<p class="legend">${serviceLegend}</p>
<svg class="graph-svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="dependency graph">
${edgeSvg}
${nodeSvg}
</svg></section>`;
}

function truncate(text: string, max: number): string {
  const limit = Math.max(8, Math.floor(max));
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

export function formatUs(us: number): string {
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!);
}

const STYLE = `
:root { --fg:#1d232a; --muted:#68727d; --bg:#fff; --line:#d8dde3; --accent:#2563eb; --bad:#d62d20; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 16px 24px; border-bottom: 1px solid var(--line); background: #f6f8fa; }
h1 { margin: 0 0 8px; font-size: 20px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
main { padding: 0 24px 40px; }
.facts { display: flex; flex-wrap: wrap; gap: 8px 24px; margin: 0; }
.facts div { display: flex; gap: 6px; } .facts dt { color: var(--muted); } .facts dd { margin: 0; font-weight: 600; }
.muted { color: var(--muted); font-weight: normal; }
.mono, code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
#filter { width: 360px; padding: 4px 8px; margin-bottom: 8px; border: 1px solid var(--line); border-radius: 4px; }
table.trace-list { border-collapse: collapse; width: 100%; }
.trace-list th, .trace-list td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); }
.trace-list td.num, .trace-list th:nth-child(n+4) { text-align: right; }
.trace-row { cursor: pointer; } .trace-row:hover { background: #eef4ff; } .trace-row.selected { background: #dbe7ff; }
td.error { color: var(--bad); font-weight: 600; }
figure.waterfall { margin: 0; overflow-x: auto; }
figcaption { margin: 4px 0 8px; color: var(--muted); }
svg text { font-size: 12px; fill: var(--fg); }
.lane-bg { fill: #f6f8fa; stroke: var(--line); }
.lane-bg.lane-1 { fill: #f3f7f1; } .lane-bg.lane-2 { fill: #f8f4fb; } .lane-bg.lane-3 { fill: #fdf6ec; } .lane-bg.lane-4 { fill: #eef7f8; } .lane-bg.lane-5 { fill: #f9f1f1; }
.lane-label { font-weight: 600; }
.span-label { fill: #333; }
.span-duration { fill: var(--muted); font-size: 11px; }
.span-bar { fill: #7a8ea8; }
.span-bar.kind-server { fill: #2563eb; } .span-bar.kind-client { fill: #60a5fa; }
.span-bar.kind-producer { fill: #d97706; } .span-bar.kind-consumer { fill: #059669; }
.span-bar.failed { fill: var(--bad); }
.span-bar.hop-target { stroke: #111; stroke-width: 1; }
.hop path { fill: none; stroke: #b45309; stroke-width: 1.5; stroke-dasharray: 4 3; }
.hop-http path { stroke: #1d4ed8; } .hop-process path { stroke: #6b7280; }
.hop text { font-size: 11px; fill: #92400e; }
marker path { fill: #555; }
.graph-svg { border: 1px solid var(--line); border-radius: 6px; background: #fcfcfd; }
.dep-node rect { fill: #e8eefc; stroke: #6b84c7; }
.dep-node.service-1 rect { fill: #e6f4ea; stroke: #5b9a6b; } .dep-node.service-2 rect { fill: #f3e8fb; stroke: #9a6bc2; }
.dep-node.service-3 rect { fill: #fdf0dc; stroke: #c29245; } .dep-node.service-4 rect { fill: #e2f3f5; stroke: #4c9ba6; } .dep-node.service-5 rect { fill: #f8e4e4; stroke: #b86464; }
.dep-node .fn { font-weight: 600; } .dep-node .mod { fill: var(--muted); font-size: 11px; }
.dep-edge path { fill: none; stroke: #8a94a0; stroke-width: 1.5; }
.dep-edge.transport-message path, .dep-edge.transport-http path { stroke-dasharray: 6 3; }
.dep-edge.invisible path { stroke: var(--bad); stroke-width: 2.5; }
.dep-edge text { font-size: 11px; fill: var(--muted); } .dep-edge.invisible text { fill: var(--bad); font-weight: 600; }
.legend { margin: 4px 0; } .swatch { display: inline-block; width: 24px; height: 3px; vertical-align: middle; margin: 0 4px 0 12px; background: #8a94a0; }
.swatch.invisible { background: var(--bad); height: 4px; }
.svc { padding: 1px 6px; border-radius: 4px; background: #e8eefc; } .svc.service-1 { background: #e6f4ea; } .svc.service-2 { background: #f3e8fb; }
.svc.service-3 { background: #fdf0dc; } .svc.service-4 { background: #e2f3f5; } .svc.service-5 { background: #f8e4e4; }
.empty { color: var(--muted); }
svg.defs { position: absolute; }
`;

// Selecting a trace shows its waterfall; the filter hides rows that do not match.
const SCRIPT = `
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll('.trace-row'));
  function select(row) {
    rows.forEach(function (r) { r.classList.toggle('selected', r === row); });
    var id = row.getAttribute('data-trace-id');
    document.querySelectorAll('figure.waterfall').forEach(function (f) { f.hidden = f.getAttribute('data-trace-id') !== id; });
  }
  rows.forEach(function (row) {
    row.addEventListener('click', function () { select(row); });
    row.addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select(row); } });
  });
  var filter = document.getElementById('filter');
  if (filter) filter.addEventListener('input', function () {
    var q = filter.value.trim().toLowerCase();
    rows.forEach(function (r) { r.hidden = q !== '' && r.textContent.toLowerCase().indexOf(q) < 0; });
  });
})();
`;
