/**
 * Self-contained HTML flame graphs: the library, the data and the page in one file, so the page
 * opens offline from disk. One page per route, and an index page with every route side by side
 * (its root's children are the routes) linking to them.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { FlameNode, FunctionRow, ReportData, RouteReport } from './aggregate';
import { flameGraphLibraryScript } from './flame-library';
import type { GrowthReport } from './growth';
import { describeReport, formatShare, formatValue, HEAP_NO_ROUTE_NOTE, sampleTypeTitle } from './table';

export interface FlameGraphPage {
  /** page heading and <title> */
  title: string;
  /** one line under the heading: what, how much, from when */
  subtitle: string;
  /** root frame (its value is the 100 % of the graph) */
  tree: FlameNode;
  /** unit of the values, e.g. 'nanoseconds' */
  unit: string;
  /** the hottest functions, shown as a table under the graph */
  functions?: readonly FunctionRow[];
  /** links shown above the graph (e.g. the other routes' pages) */
  links?: readonly { href: string; text: string }[];
  /** what the functions table's shares are of: 'route' (default) or e.g. 'heap' */
  shareOf?: string;
  /**
   * Frames carry `d`, their inclusive growth since an earlier snapshot: frames are coloured by
   * it (red grew, blue shrank, grey unchanged: d3-flame-graph's differential colours).
   */
  differential?: boolean;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON that is safe inside a <script> element ("<" never appears literally). */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

const PAGE_CSS = `
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 16px 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; }
.subtitle { color: #555; margin: 0 0 12px; }
.links a { margin-right: 12px; }
.controls { margin: 8px 0; display: flex; gap: 8px; align-items: center; }
.controls input { width: 260px; padding: 3px 6px; }
#details { height: 2.8em; line-height: 1.4em; overflow: hidden; font-family: ui-monospace, monospace; font-size: 12px; color: #333; white-space: pre; }
#chart { width: 100%; overflow-x: auto; }
table.functions { border-collapse: collapse; margin-top: 16px; font-size: 13px; }
table.functions th, table.functions td { padding: 2px 10px; text-align: right; border-bottom: 1px solid #eee; }
table.functions td.text, table.functions th.text { text-align: left; }
table.functions td.loc { color: #666; font-family: ui-monospace, monospace; }
`;

/**
 * Runs in the browser: draws the tree with d3-flame-graph. Frames are named after the function;
 * the hover title and the details line add file:line, the value and the share of the root.
 */
const PAGE_SCRIPT = `
(function () {
  var page = JSON.parse(document.getElementById('flame-data').textContent);
  var total = page.tree.v || 1;
  function fmt(v) {
    if (page.unit === 'bytes') {
      var a = Math.abs(v), sign = v < 0 ? '-' : '';
      if (a >= 1048576) return sign + (a / 1048576).toFixed(1) + ' MiB';
      if (a >= 1024) return sign + (a / 1024).toFixed(1) + ' KiB';
      return sign + a + ' B';
    }
    if (page.unit === 'nanoseconds') {
      if (v >= 1e9) return (v / 1e9).toFixed(2) + ' s';
      if (v >= 1e6) return (v / 1e6).toFixed(1) + ' ms';
      return (v / 1e3).toFixed(0) + ' us';
    }
    return String(v) + (page.unit && page.unit !== 'count' ? ' ' + page.unit : '');
  }
  function label(d) {
    var where = d.data.f ? '  ' + d.data.f : '';
    var grew = page.differential ? ', ' + (d.data.d >= 0 ? '+' : '') + fmt(d.data.d) + ' since the earliest snapshot' : '';
    return d.data.n + where + '\\n' + fmt(d.value) + ', ' + (100 * d.value / total).toFixed(1) + '% of ' + page.tree.n + grew;
  }
  var container = document.getElementById('chart');
  var create = typeof flamegraph === 'function' ? flamegraph : flamegraph.default;
  var chart = create()
    .width(Math.max(640, container.clientWidth || 960))
    .cellHeight(18)
    .minFrameSize(1)
    .transitionDuration(300)
    .setLabelHandler(label)
    .setDetailsElement(document.getElementById('details'));
  if (page.differential) chart.setColorMapper(flamegraph.colorMapper.differentialColorMapper);
  d3.select(container).datum(page.tree).call(chart);
  document.getElementById('search').addEventListener('input', function (e) {
    var term = e.target.value;
    if (term) chart.search(term.replace(/[.*+?^$()|[\\]\\\\{}]/g, '\\\\$&')); else chart.clear();
  });
  document.getElementById('reset').addEventListener('click', function () { chart.resetZoom(); });
})();
`;

function functionsTable(rows: readonly FunctionRow[], unit: string, shareOf: string): string {
  if (rows.length === 0) return '';
  const body = rows
    .map(
      (f) =>
        `<tr><td>${formatValue(f.self, unit)}</td><td>${formatShare(f.selfShareOfRoute)}</td><td>${formatShare(f.selfShareOfAll)}</td>` +
        `<td>${formatValue(f.total, unit)}</td><td>${formatShare(f.totalShareOfRoute)}</td>` +
        `<td class="text">${escapeHtml(f.name)}</td><td class="text loc">${escapeHtml(f.location || '-')}</td></tr>`,
    )
    .join('\n');
  return `<table class="functions">
<thead><tr><th>Self</th><th>% ${escapeHtml(shareOf)}</th><th>% all</th><th>Total</th><th>% ${escapeHtml(shareOf)}</th><th class="text">Function</th><th class="text">Location</th></tr></thead>
<tbody>
${body}
</tbody>
</table>`;
}

/** One self-contained page drawing `page.tree` as a flame graph. */
export function renderFlameGraphHtml(page: FlameGraphPage): string {
  const links = page.links?.length
    ? `<p class="links">${page.links.map((l) => `<a href="${escapeHtml(l.href)}">${escapeHtml(l.text)}</a>`).join('')}</p>`
    : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(page.title)}</title>
<style>${PAGE_CSS}</style>
</head>
<body>
<h1>${escapeHtml(page.title)}</h1>
<p class="subtitle">${escapeHtml(page.subtitle)}</p>
${links}
<div class="controls"><input id="search" type="search" placeholder="Highlight functions matching..."><button id="reset" type="button">Reset zoom</button><span>Click a frame to zoom; hover for file:line.</span></div>
<div id="details"></div>
<div id="chart"></div>
${functionsTable(page.functions ?? [], page.unit, page.shareOf ?? 'route')}
<script>
${flameGraphLibraryScript()}
</script>
<script id="flame-data" type="application/json">${scriptJson({ tree: page.tree, unit: page.unit, differential: page.differential === true })}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}

function appTitle(report: ReportData): string {
  return report.appNames.length > 0 ? `${report.appNames.join(', ')} · ` : '';
}

/** The page of one route. */
export function renderRouteHtml(report: ReportData, route: RouteReport, links: FlameGraphPage['links'] = []): string {
  const what = sampleTypeTitle(report.sampleType.type);
  return renderFlameGraphHtml({
    title: `${appTitle(report)}${route.route} · ${what}`,
    subtitle: `${formatValue(route.total, report.sampleType.unit)}, ${formatShare(route.share)} of all ${what} · ${describeReport(report, false)}`,
    tree: route.flame,
    unit: report.sampleType.unit,
    functions: route.functions,
    links,
  });
}

/** The index page: every shown route under one root, with links to the routes' pages. */
export function renderIndexHtml(report: ReportData, links: FlameGraphPage['links'] = []): string {
  const what = sampleTypeTitle(report.sampleType.type);
  const shown = report.routes.reduce((sum, r) => sum + r.total, 0);
  // with worker threads: each thread's share, e.g. "main 40 % · resize 60 %"
  const threads = report.threads?.map((t) => `${t.thread} ${formatShare(t.share)}`).join(' · ');
  return renderFlameGraphHtml({
    title: `${appTitle(report)}all routes · ${what}`,
    subtitle: threads === undefined ? describeReport(report, false) : `${describeReport(report, false)} · threads: ${threads}`,
    tree: { n: 'all routes', f: '', v: shown, c: report.routes.map((r) => r.flame) },
    unit: report.sampleType.unit,
    links,
  });
}

/** The tree of a heap report: its route trees (one, '(no route)': heap samples carry none) under one root. */
function heapTree(report: ReportData): FlameNode {
  const children = report.routes.flatMap((r) => r.flame.c ?? []);
  return { n: 'in-use memory', f: '', v: report.total, ...(children.length > 0 ? { c: children } : {}) };
}

/** A heap report's one page: in-use memory of the whole process, by function. */
export function renderHeapHtml(report: ReportData): string {
  return renderFlameGraphHtml({
    title: `${appTitle(report)}heap · ${sampleTypeTitle(report.sampleType.type)}`,
    subtitle: `${describeReport(report, false)} · ${HEAP_NO_ROUTE_NOTE}`,
    tree: heapTree(report),
    unit: report.sampleType.unit,
    functions: report.routes[0]?.functions ?? [],
    shareOf: 'heap',
  });
}

/** `report --growth --html`: the latest snapshot's flame graph, coloured by growth since the earliest. */
export function renderGrowthHtml(growth: GrowthReport): string {
  const apps = growth.appNames.length > 0 ? `${growth.appNames.join(', ')} · ` : '';
  const change = growth.latest.bytes - growth.earliest.bytes;
  return renderFlameGraphHtml({
    title: `${apps}heap growth · in-use space`,
    subtitle:
      `${growth.earliest.source} → ${growth.latest.source}: ${formatValue(growth.earliest.bytes, growth.unit)} → ` +
      `${formatValue(growth.latest.bytes, growth.unit)} (${change >= 0 ? '+' : '-'}${formatValue(Math.abs(change), growth.unit)}). ` +
      'Red frames grew, blue ones shrank; width is the latest in-use space. ' + HEAP_NO_ROUTE_NOTE,
    tree: growth.tree,
    unit: growth.unit,
    differential: true,
  });
}

/** Writes the growth page as index.html in `outDir` (created if missing); returns its path. */
export async function writeGrowthHtml(growth: GrowthReport, outDir: string): Promise<string> {
  await fsp.mkdir(outDir, { recursive: true });
  const index = path.join(outDir, 'index.html');
  await fsp.writeFile(index, renderGrowthHtml(growth));
  return index;
}

/** `/users/:id` -> `users_id`; '(no route)' -> `no_route`; '/' -> `root`. */
export function routeSlug(route: string): string {
  const slug = route.replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^_+|_+$/g, '');
  return slug || 'root';
}

export interface WrittenHtml {
  index: string;
  routes: { route: string; file: string }[];
}

/**
 * Writes index.html and one route-<slug>.html per route into `outDir` (created if missing); a
 * heap report has no routes, so index.html alone.
 */
export async function writeHtmlReport(report: ReportData, outDir: string): Promise<WrittenHtml> {
  await fsp.mkdir(outDir, { recursive: true });
  if (report.heap !== undefined) {
    const index = path.join(outDir, 'index.html');
    await fsp.writeFile(index, renderHeapHtml(report));
    return { index, routes: [] };
  }
  const names = uniqueFileNames(report.routes.map((r) => `route-${routeSlug(r.route)}`));
  const routeLinks = report.routes.map((r, i) => ({ href: names[i]!, text: r.route }));
  const back = [{ href: 'index.html', text: '← all routes' }];
  const routes: WrittenHtml['routes'] = [];
  for (const [i, route] of report.routes.entries()) {
    const file = path.join(outDir, names[i]!);
    await fsp.writeFile(file, renderRouteHtml(report, route, back));
    routes.push({ route: route.route, file });
  }
  const index = path.join(outDir, 'index.html');
  await fsp.writeFile(index, renderIndexHtml(report, routeLinks));
  return { index, routes };
}

function uniqueFileNames(bases: readonly string[]): string[] {
  const used = new Set<string>();
  return bases.map((base) => {
    let name = `${base}.html`;
    for (let n = 2; used.has(name); n++) name = `${base}-${n}.html`;
    used.add(name);
    return name;
  });
}
