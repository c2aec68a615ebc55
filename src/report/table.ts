/**
 * The report as text for a terminal: a summary of the routes, then per route its hottest
 * functions with their share of the route and of the whole.
 */
import { functionKey, isHeapSampleType, type FlameNode, type FunctionRow, type ReportData, type RouteReport, type SkippedProfile } from './aggregate';

type Align = 'left' | 'right';

/** Aligned columns separated by two spaces, no trailing blanks. */
export function renderColumns(header: readonly string[], rows: readonly (readonly string[])[], align: readonly Align[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, col) => Math.max(...all.map((row) => (row[col] ?? '').length)));
  return all
    .map((row) =>
      row
        .map((cell, col) => (align[col] === 'right' ? cell.padStart(widths[col]!) : cell.padEnd(widths[col]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `12.3%`: one decimal, enough to rank functions without false precision. */
export function formatShare(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

/** A value in its unit, scaled for reading: nanoseconds as ms or s, bytes as KiB/MiB. */
export function formatValue(value: number, unit: string): string {
  if (unit === 'nanoseconds') {
    if (value >= 1e9) return `${(value / 1e9).toFixed(2)} s`;
    if (value >= 1e6) return `${(value / 1e6).toFixed(1)} ms`;
    return `${(value / 1e3).toFixed(0)} us`;
  }
  if (unit === 'bytes') {
    if (value >= 1024 * 1024) return `${(value / 1024 / 1024).toFixed(1)} MiB`;
    if (value >= 1024) return `${(value / 1024).toFixed(1)} KiB`;
    return `${value} B`;
  }
  return String(value);
}

const SAMPLE_TYPE_TITLES: Readonly<Record<string, string>> = {
  cpu: 'CPU time',
  wall: 'Wall time',
  samples: 'Samples',
  sample: 'Samples',
  inuse_space: 'In-use space',
  inuse_objects: 'In-use objects',
};

/** Why a heap report has no route column. */
export const HEAP_NO_ROUTE_NOTE =
  'Heap samples carry no route: V8 records no request context for allocations, so in-use memory is shown for the whole process.';

export function sampleTypeTitle(type: string): string {
  return SAMPLE_TYPE_TITLES[type] ?? type;
}

/** `2026-11-26 07:00:00Z` */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** One line: what was measured, from what, over which time. */
export function describeReport(report: ReportData, withAppNames = true): string {
  const { type, unit } = report.sampleType;
  const apps = withAppNames && report.appNames.length > 0 ? `${report.appNames.join(', ')}: ` : '';
  const profiles = `${report.profileCount} profile${report.profileCount === 1 ? '' : 's'}`;
  const range = report.startMs !== undefined && report.endMs !== undefined
    ? `, ${formatTime(report.startMs)} to ${formatTime(report.endMs)}`
    : '';
  const spans = report.spanIds === undefined ? '' : `; only samples of span${report.spanIds.length === 1 ? '' : 's'} ${report.spanIds.join(', ')}`;
  return `${apps}${sampleTypeTitle(type)} (sample type '${type}'${unit ? `, ${unit}` : ''}) from ${profiles}${range}${spans}; total ${formatValue(report.total, unit)}`;
}

function routeSummary(report: ReportData): string {
  const unit = report.sampleType.unit;
  const rows = report.routes.map((r) => [r.route, formatValue(r.total, unit), formatShare(r.share), hottestName(r)]);
  return renderColumns(['Route', sampleTypeTitle(report.sampleType.type), 'Share', 'Hottest function (self)'], rows, [
    'left',
    'right',
    'right',
    'left',
  ]);
}

/** Shares by JavaScript thread, when worker threads took part (the `thread` label). */
function threadSummary(report: ReportData): string | undefined {
  if (report.threads === undefined) return undefined;
  const unit = report.sampleType.unit;
  const rows = report.threads.map((t) => [t.thread, formatValue(t.total, unit), formatShare(t.share)]);
  return renderColumns(['Thread', sampleTypeTitle(report.sampleType.type), 'Share'], rows, ['left', 'right', 'right']);
}

function hottestName(route: RouteReport): string {
  let best: FunctionRow | undefined;
  for (const f of route.functions) if (!best || f.self > best.self) best = f;
  return best?.name ?? '-';
}

function routeTable(report: ReportData, route: RouteReport): string {
  const unit = report.sampleType.unit;
  const what = sampleTypeTitle(report.sampleType.type);
  const heading = `${route.route}: ${formatValue(route.total, unit)}, ${formatShare(route.share)} of all ${what}; top ${report.top} functions by ${report.sortBy} time`;
  const rows = route.functions.map((f) => [
    formatValue(f.self, unit),
    formatShare(f.selfShareOfRoute),
    formatShare(f.selfShareOfAll),
    formatValue(f.total, unit),
    formatShare(f.totalShareOfRoute),
    f.name,
    f.location || '-',
  ]);
  const table = renderColumns(
    ['Self', '% route', '% all', 'Total', '% route', 'Function', 'Location'],
    rows,
    ['right', 'right', 'right', 'right', 'right', 'left', 'left'],
  );
  return `${heading}\n${indent(table)}`;
}

/** Inputs not used, one line per reason (a recording has many wall and heap files). */
export function skippedSummary(skipped: readonly SkippedProfile[]): string {
  const n = skipped.length;
  if (n === 0) return '';
  const byReason = new Map<string, { count: number; example: string }>();
  for (const s of skipped) {
    const entry = byReason.get(s.reason);
    if (entry) entry.count += 1;
    else byReason.set(s.reason, { count: 1, example: s.source });
  }
  const lines = [...byReason.entries()].map(([reason, { count, example }]) =>
    count === 1 ? `  ${example}: ${reason}` : `  ${count} files (e.g. ${example}): ${reason}`,
  );
  return `${n} input${n === 1 ? '' : 's'} not used:\n${lines.join('\n')}`;
}

export function indent(text: string): string {
  return text.split('\n').map((line) => `  ${line}`).join('\n');
}

/** The heaviest retaining stacks (self bytes at the leaf), outermost frame first. */
export function topStacks(tree: FlameNode, limit: number): { frames: string[]; self: number }[] {
  const out: { frames: string[]; self: number }[] = [];
  const walk = (node: FlameNode, path: string[]): void => {
    const childSum = (node.c ?? []).reduce((sum, c) => sum + c.v, 0);
    if (node.v - childSum > 0 && path.length > 0) out.push({ frames: path, self: node.v - childSum });
    for (const c of node.c ?? []) walk(c, [...path, c.n]);
  };
  walk(tree, []);
  return out.sort((a, b) => b.self - a.self).slice(0, limit);
}

/** A stack on one line, leaf last; long stacks keep their outermost and innermost frames. */
export function formatStack(frames: readonly string[], keep = 6): string {
  if (frames.length <= keep) return frames.join(' > ');
  return [...frames.slice(0, 2), '...', ...frames.slice(frames.length - (keep - 2))].join(' > ');
}

/** When a heap snapshot was taken, or that its profile does not say. */
export function formatSnapshotTime(timeMs: number | undefined): string {
  return timeMs === undefined ? 'no time in the profile' : formatTime(timeMs);
}

function heapTables(report: ReportData): string[] {
  const heap = report.heap!;
  const unit = report.sampleType.unit;
  const root = report.routes[0];
  const rows = (root?.functions ?? []).map((f) => {
    const objects = heap.objectsByFunction[functionKey(f)];
    return [formatValue(f.self, unit), formatShare(f.selfShareOfAll), formatValue(f.total, unit), formatShare(f.totalShareOfAll),
      objects ? String(objects.self) : '-', f.name, f.location || '-'];
  });
  const table = renderColumns(['Self', '%', 'Total', '%', 'Objects', 'Function', 'Location'], rows,
    ['right', 'right', 'right', 'right', 'right', 'left', 'left']);
  const heading = `Top ${report.top} functions by ${report.sortBy} in-use space (Objects: in-use objects allocated by the function itself)`;
  const stacks = root ? topStacks(root.flame, 5).map((s) => `  ${formatValue(s.self, unit).padStart(10)}  ${formatStack(s.frames)}`) : [];
  const when = formatSnapshotTime(heap.timeMs);
  const snapshot = `Snapshot: ${heap.source} (${when})${heap.earlierSnapshots > 0 ? `; ${heap.earlierSnapshots} earlier snapshot${heap.earlierSnapshots === 1 ? '' : 's'} not summed (--growth ranks what grew between the earliest and the latest)` : ''}; ${heap.objectsTotal} objects in use`;
  return [snapshot, HEAP_NO_ROUTE_NOTE, `${heading}\n${indent(table)}`, `Retaining stacks (bytes allocated there and still live):\n${stacks.join('\n')}`];
}

/** The whole report as terminal text. */
export function formatTable(report: ReportData): string {
  if (report.heap !== undefined || isHeapSampleType(report.sampleType.type)) {
    const heapParts = [describeReport(report), ...(report.heap ? heapTables(report) : [HEAP_NO_ROUTE_NOTE])];
    const heapThreads = threadSummary(report);
    // what is live per thread, after the snapshot line and the note (worker threads' heaps)
    if (heapThreads !== undefined) heapParts.splice(3, 0, heapThreads);
    const skippedHeap = skippedSummary(report.skipped);
    if (skippedHeap) heapParts.push(skippedHeap);
    return `${heapParts.join('\n\n')}\n`;
  }
  const parts = [describeReport(report), routeSummary(report)];
  const threads = threadSummary(report);
  if (threads !== undefined) parts.push(threads);
  if (report.hiddenRoutes > 0) parts.push(`(${report.hiddenRoutes} other route${report.hiddenRoutes === 1 ? '' : 's'} not shown)`);
  for (const route of report.routes) parts.push(routeTable(report, route));
  const skipped = skippedSummary(report.skipped);
  if (skipped) parts.push(skipped);
  return `${parts.join('\n\n')}\n`;
}
