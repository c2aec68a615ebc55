'use strict';
/**
 * From the runs' raw figures to the tables: medians per configuration and route, ratios to the
 * baseline, issue 6's targets with pass/fail, and the Markdown section of bench/RESULTS.md for
 * the Node version that ran (each major version keeps its own section).
 */
const fs = require('node:fs');

const CONFIGS = [
  { key: 'baseline', label: '1. baseline (no profiling)' },
  { key: 'continuous', label: '2. this plugin, continuous + labels' },
  { key: 'idle', label: '3. this plugin, installed idle' },
  { key: 'pyroscope', label: '4. @pyroscope/nodejs 0.6.4 + setLabels' },
];

/** Optional configurations for diagnosis (BENCH_EXTRA=engine): measured and shown, never judged. */
const EXTRA_CONFIGS = [
  { key: 'baseline-again', label: 'x. baseline again (A/A: the run\'s own noise)' },
  { key: 'disabled', label: 'x. this plugin, enabled: false (diagnosis)' },
  { key: 'large-graph', label: 'x. baseline + require(\'typescript\'), no profiling (control)' },
  { key: 'loaded', label: 'x. @datadog/pprof loaded, not started (diagnosis)' },
  { key: 'engine', label: 'x. engine alone, no labels/uploads (diagnosis)' },
];

const LIMITS = {
  continuous: (nodeMajor) => (nodeMajor >= 24 ? { '/ping': 1.02, '/hello': 1.1 } : { '/ping': 1.03, '/hello': 1.25 }),
  idle: { '/ping': 1.01, '/hello': 1.02 },
  sessionStartBlockMs: 100,
  flushBlockMs: 10,
  samplesPerProfile: 16_000,
  decompressedBytesPerProfile: 4 * 1024 * 1024,
  rssOverBaselineMB: 40,
  labelShare: 0.99,
};

function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/**
 * cells: one per configuration and route, from bench/run.js (`rounds` = CPU µs per request of each
 * round); probe: per configuration, the flush probe (with one more startup block).
 */
function summarize(cells, probe, routes) {
  const cell = (config, route) => cells.find((c) => c.config === config && c.route === route);
  const byConfig = {};
  for (const { key } of [...CONFIGS, ...EXTRA_CONFIGS].filter((c) => cells.some((x) => x.config === c.key))) {
    const perRoute = {};
    for (const route of routes) {
      const own = cell(key, route);
      const base = cell('baseline', route);
      perRoute[route] = {
        rounds: own.rounds.length,
        cpuPerRequest: median(own.rounds),
        cpuPerRequestMin: Math.min(...own.rounds),
        ratio: median(own.rounds) / median(base.rounds),
        pairedRatio: median(own.rounds.map((v, i) => v / base.rounds[i])),
        eldP99Ms: own.eldP99Ms,
        eldMaxMs: own.eldMaxMs,
        maxRssMB: own.maxRssMB,
        rssOverBaselineMB: own.maxRssMB - base.maxRssMB,
        bytesPerMin: own.bytesPerMin,
      };
    }
    const mine = cells.filter((c) => c.config === key);
    const startups = [...mine.map((c) => c.startup), ...(probe[key] ? [probe[key].startup] : [])];
    byConfig[key] = {
      routes: perRoute,
      startupBlockMs: median(startups.map((s) => s.cpuMs)),
      startupBlockWorstMs: Math.max(...startups.map((s) => s.cpuMs)),
      startupBlockWallMs: median(startups.map((s) => s.wallMs)),
      uploadsMeasuredMin: Math.min(...mine.map((c) => c.uploadsMeasured)),
      maxSamples: Math.max(0, ...mine.map((c) => c.ingest.maxSamples)),
      maxDecompressedBytes: Math.max(0, ...mine.map((c) => c.ingest.maxDecompressedBytes)),
      uploads: mine.reduce((n, c) => n + c.ingest.uploads, 0),
      sessions: Math.max(0, ...mine.map((c) => (c.profiler ? c.profiler.sessions : 0))),
      labelMode: mine.map((c) => c.profiler && c.profiler.labelMode).find(Boolean),
      dropped: mine.reduce((n, c) => n + (c.profiler ? c.profiler.dropped + c.profiler.uploadsFailed : 0), 0),
    };
  }
  return byConfig;
}

function minShare(accuracy) {
  if (!accuracy) return NaN;
  return Math.min(...Object.values(accuracy.routes).map((r) => r.share));
}

/** [{ target, measured, pass }] for the Node that ran. */
function evaluateTargets({ summary, probe, accuracy, nodeMajor }) {
  const c = summary.continuous;
  const i = summary.idle;
  const p = summary.pyroscope;
  const rows = [];
  const add = (target, measured, pass) => rows.push({ target, measured, pass: Boolean(pass) });
  const lim = LIMITS.continuous(nodeMajor);
  const nodeLabel = nodeMajor >= 24 ? 'Node 24' : 'Node 20';
  for (const route of ['/ping', '/hello']) {
    add(`continuous + labels (${nodeLabel}), ${route}: CPU/req ratio <= ${lim[route]}`, c.routes[route].ratio.toFixed(3), c.routes[route].ratio <= lim[route]);
  }
  for (const route of ['/ping', '/hello']) {
    add(`installed idle, ${route}: CPU/req ratio <= ${LIMITS.idle[route]}`, i.routes[route].ratio.toFixed(3), i.routes[route].ratio <= LIMITS.idle[route]);
  }
  for (const route of ['/ping', '/hello']) {
    add(`continuous never slower than @pyroscope/nodejs, ${route}`, `${us(c.routes[route].cpuPerRequest)} vs ${us(p.routes[route].cpuPerRequest)} µs/req`, c.routes[route].cpuPerRequest <= p.routes[route].cpuPerRequest);
  }
  const ours = minShare(accuracy && accuracy.ours && accuracy.ours.accuracy);
  const theirs = minShare(accuracy && accuracy.pyroscope && accuracy.pyroscope.accuracy);
  add(`labels exact: worst route >= ${LIMITS.labelShare * 100} % (@pyroscope/nodejs: ${pct(theirs)})`, pct(ours), ours >= LIMITS.labelShare);
  add(
    `session start block <= ${LIMITS.sessionStartBlockMs} ms (CPU, median of runs; worst ${c.startupBlockWorstMs.toFixed(1)} ms)`,
    `${c.startupBlockMs.toFixed(1)} ms (wall ${c.startupBlockWallMs.toFixed(1)} ms)`,
    c.startupBlockMs <= LIMITS.sessionStartBlockMs,
  );
  add(
    `flush block <= ${LIMITS.flushBlockMs} ms (longest block idle across a flush, CPU; baseline ${probe.baseline.cpuMs.toFixed(1)} ms)`,
    `${probe.continuous.cpuMs.toFixed(1)} ms (wall ${probe.continuous.wallMs.toFixed(1)} ms)`,
    probe.continuous.cpuMs <= LIMITS.flushBlockMs && probe.continuous.uploads > 0,
  );
  add(`profile < ${LIMITS.samplesPerProfile} samples`, String(c.maxSamples), c.maxSamples < LIMITS.samplesPerProfile && c.uploads > 0);
  add(`profile < 4 MiB decompressed`, kib(c.maxDecompressedBytes), c.maxDecompressedBytes < LIMITS.decompressedBytesPerProfile && c.uploads > 0);
  const rss = Math.max(...Object.values(c.routes).map((r) => r.rssOverBaselineMB));
  add(`peak RSS over baseline <= ${LIMITS.rssOverBaselineMB} MB (worst route)`, `${rss.toFixed(1)} MB`, rss <= LIMITS.rssOverBaselineMB);
  return rows;
}

const us = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const pct = (x) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)} %` : 'n/a');
const kib = (bytes) => `${(bytes / 1024).toFixed(0)} KiB`;
const mb = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');

function table(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

const shown = (summary) => [...CONFIGS, ...EXTRA_CONFIGS].filter((c) => summary[c.key]);

function cpuTable(summary, routes) {
  return table(
    ['configuration', ...routes.map((r) => `${r} CPU µs/req median (min)`), ...routes.map((r) => `${r} ratio (paired)`)],
    shown(summary).map(({ key, label }) => [
      label,
      ...routes.map((r) => `${us(summary[key].routes[r].cpuPerRequest)} (${us(summary[key].routes[r].cpuPerRequestMin)})`),
      ...routes.map((r) => `${summary[key].routes[r].ratio.toFixed(3)} (${summary[key].routes[r].pairedRatio.toFixed(3)})`),
    ]),
  );
}

function sideTable(summary, probe, routes) {
  const perRoute = routes.join(', ');
  return table(
    ['configuration', `event-loop delay p99 / max, ms (${perRoute})`, 'start block ms, CPU (wall)', 'flush block ms, CPU (wall)', `KiB uploaded/min (${perRoute})`, 'largest profile: samples, decompressed', `peak RSS MB, over baseline (${perRoute})`],
    shown(summary).map(({ key, label }) => {
      const s = summary[key];
      const each = (f) => routes.map((r) => f(s.routes[r])).join(', ');
      return [
        label,
        each((r) => `${mb(r.eldP99Ms)} / ${mb(r.eldMaxMs)}`),
        `${mb(s.startupBlockMs)} (${mb(s.startupBlockWallMs)})`,
        probe[key] ? `${mb(probe[key].cpuMs)} (${mb(probe[key].wallMs)})` : '-',
        each((r) => (r.bytesPerMin / 1024).toFixed(0)),
        s.uploads > 0 ? `${s.maxSamples}, ${kib(s.maxDecompressedBytes)}` : '-',
        each((r) => `${r.maxRssMB.toFixed(0)} (+${r.rssOverBaselineMB.toFixed(1)})`),
      ];
    }),
  );
}

function accuracyLines(accuracy) {
  if (!accuracy) return ['(label accuracy not measured)'];
  return ['ours', 'pyroscope'].map((who) => {
    const a = accuracy[who];
    if (!a) return `${who}: not measured`;
    if (a.error) return `${who}: failed: ${a.error}`;
    const cells = Object.entries(a.accuracy.routes).map(([route, e]) => `${route} ${pct(e.share)} of ${e.samples}`);
    return `- ${a.mode} (${a.labelMode}): ${cells.join(', ')}; background samples with a route: ${a.accuracy.background.withRoute}/${a.accuracy.background.samples}`;
  });
}

/** The whole section for one Node version. */
function markdownSection({ env, plan, summary, probe, accuracy, targets, routes, elapsedS }) {
  const passed = targets.filter((t) => t.pass).length;
  return [
    `## Node ${env.node}`,
    '',
    `${env.date} · ${env.nproc} cores (${env.cpuModel}) · load average ${env.loadBefore} before, ${env.loadAfter} after (shared machine) · bench took ${elapsedS.toFixed(0)} s`,
    '',
    `${plan.rounds} rounds A B C D per route, ${plan.connections} connections, ${routes.map((r) => `${plan.slice[r]} requests per slice on ${r}`).join(', ')}; ` +
      `uploadRate ${plan.uploadRate} (both profilers). Ratio = median / baseline median; paired = median over rounds of the ratio within the round.` +
      (plan.quick ? ' **BENCH_QUICK: smoke test, figures not meaningful.**' : ''),
    '',
    cpuTable(summary, routes),
    '',
    sideTable(summary, probe, routes),
    '',
    `Label mode: ${summary.continuous.labelMode}. Uploads during the rounds (fewest per route): ours ${summary.continuous.uploadsMeasuredMin}, @pyroscope/nodejs ${summary.pyroscope.uploadsMeasuredMin}. ` +
      `Sessions started by the idle configuration: ${summary.idle.sessions}. Profiles lost or failed: ${summary.continuous.dropped}. ` +
      `Blocks: the longest synchronous stretch, as CPU time (${probe.continuous.cpuSource}) and as wall-clock event-loop delay.`,
    '',
    'Label accuracy (share of each route\'s own CPU samples labelled with that route):',
    '',
    ...accuracyLines(accuracy),
    '',
    `Targets (${passed}/${targets.length} hold):`,
    '',
    table(['target', 'measured', ''], targets.map((t) => [t.target, t.measured, t.pass ? 'pass' : '**FAIL**'])),
  ].join('\n');
}

/** Replaces (or adds) this Node major's section in RESULTS.md, leaving the rest of the file alone. */
function writeResults(file, nodeMajor, section) {
  const start = `<!-- bench:node${nodeMajor}:start -->`;
  const end = `<!-- bench:node${nodeMajor}:end -->`;
  const block = `${start}\n${section}\n${end}`;
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmark results\n\nWritten by `npm run bench` (bench/run.js).\n';
  const at = text.indexOf(start);
  const until = text.indexOf(end);
  if (at >= 0 && until > at) {
    text = text.slice(0, at) + block + text.slice(until + end.length);
  } else {
    // sections in Node order, before the hand-written part
    const anchor = text.indexOf('<!-- bench:sections-end -->');
    text = anchor >= 0 ? `${text.slice(0, anchor)}${block}\n\n${text.slice(anchor)}` : `${text.trimEnd()}\n\n${block}\n`;
  }
  fs.writeFileSync(file, text);
}

module.exports = { CONFIGS, EXTRA_CONFIGS, LIMITS, median, summarize, evaluateTargets, markdownSection, writeResults, table };
