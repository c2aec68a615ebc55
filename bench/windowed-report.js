'use strict';
/**
 * The no-load and light-load phases of the bench (issue 19: "how many cores does it cost my fleet,
 * what does it do to my p99"): their analysis, tables and targets, for bench/report.js.
 *
 * In these phases (bench/run.js windowedRound) every server runs at once over window-long slices,
 * idle (`idle`) or paced at NN % of a core (`lightNN`). A configuration's figure is its CPU in ms
 * per second of wall time; what profiling adds is its per-round difference to the baseline, the
 * plugin's own part its difference to the engine floor, each with a 95 % bootstrap interval over
 * the paired rounds (bench/stats.js). Request latency per slice: p50 / p99 / p99.9 / max (the
 * load generator's, from when each request was due); a round's figure per configuration, the
 * median over rounds shown.
 */
const stats = require('./stats');

/** Issue 19's targets. */
const WINDOWED_TARGETS = {
  /** the plugin's own CPU at no load, over the engine floor, ms per second */
  idleOwnMsPerS: 0.5,
  /** the plugin's own cost at 10 % of a core, share of the baseline request, CPED lines */
  lightOwnShareCped: 0.03,
  /** p99 under paced load, plugin continuous / no profiling (a slice holds one flush: not in its p99) */
  p99Ratio: 1.05,
};

const isWindowedShape = (shape) => shape === 'idle' || /^light\d+$/.test(shape);

/** The share of a core a `lightNN` shape paces the baseline at (0 for other shapes). */
function lightShare(shape) {
  const m = /^light(\d+)$/.exec(shape);
  return m ? Number(m[1]) / 100 : 0;
}

const shapeLabel = (shape) => (shape === 'idle' ? 'no load' : `paced at ${Math.round(lightShare(shape) * 100)} % of a core`);

const scaled = (i, k) => i && { ...i, estimate: i.estimate * k, low: i.low * k, high: i.high * k };

const LATENCY_KEYS = ['p50', 'p99', 'p999', 'max'];

function analyzeWindowed(phase) {
  const busy = phase.busy;
  const has = (key) => Array.isArray(busy[key]);
  const msPerS = (a, b) => (has(a) && has(b) ? scaled(stats.pairedDifference(busy[a], busy[b]), 1000) : undefined);
  const rows = phase.configs.map((key) => ({
    key,
    msPerS: stats.mean(busy[key]) * 1000,
    added: key === 'baseline' ? undefined : msPerS(key, 'baseline'),
  }));
  const r = phase.rounds;
  const light = lightShare(phase.shape) > 0 && has('continuous') && has('engine');
  // no load: no request, no latency
  const loaded = phase.latency && Object.values(phase.latency).some((perRound) => perRound.some(Boolean));
  const latency = loaded ? latencySummary(phase.latency) : undefined;
  return {
    id: `${phase.route}:${phase.shape}`,
    route: phase.route,
    shape: phase.shape,
    label: `${phase.label}, ${shapeLabel(phase.shape)}`,
    rounds: busy.baseline.length,
    rows,
    own: msPerS('continuous', 'engine'),
    ratio: light ? stats.pairedRatio(r.continuous, r.baseline) : undefined,
    ownShare: light ? stats.pairedShare(r.continuous, r.engine, r.baseline) : undefined,
    latency,
  };
}

/**
 * Per configuration the median over rounds of each latency figure; p99 of the plugin against the
 * baseline as a paired ratio; what a flush (continuous: one per slice) and a session start
 * (starting: one per slice) add to the slowest request, as the median over rounds of max - max.
 */
function latencySummary(latency) {
  const of = (key, figure) => (latency[key] || []).map((x) => (x ? x[figure] : NaN));
  const figures = Object.fromEntries(Object.keys(latency).map((key) => [key, Object.fromEntries(LATENCY_KEYS.map((f) => [f, stats.median(of(key, f))]))]));
  const addsToMax = (key) => (latency[key] && latency.baseline ? stats.median(of(key, 'max').map((m, i) => m - of('baseline', 'max')[i])) : NaN);
  return {
    figures,
    p99Ratio: latency.continuous && latency.baseline ? stats.pairedRatio(of('continuous', 'p99'), of('baseline', 'p99')) : undefined,
    flushAddsMs: addsToMax('continuous'),
    startAddsMs: addsToMax('starting'),
  };
}

const signed = (x, digits) => (x >= 0 ? '+' : '') + x.toFixed(digits);
const fmtMs = (i) => (i && Number.isFinite(i.estimate) ? `${signed(i.estimate, 2)} [${signed(i.low, 2)}, ${signed(i.high, 2)}]` : 'n/a');
const ms = (x, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

/** CPU in ms per second per configuration and phase, then request latency under light load. */
function windowedTables(phases, { table, configLabel, fmtRatio, fmtShare, turns = false }) {
  if (phases.length === 0) return [];
  const how = turns ? 'each server alone in its slice, in turn (BENCH_WINDOWED_TURNS)' : 'every server at once over window-long slices';
  const cpuRows = phases.flatMap((p) => [
    ...p.rows.map((row) => [`${p.label} (${p.rounds} rounds)`, configLabel(row.key), ms(row.msPerS), row.added ? fmtMs(row.added) : '-']),
    [p.label, '**plugin\'s own part (continuous - engine floor)**', '', `**${fmtMs(p.own)}**`],
    ...(p.ratio ? [[p.label, 'plugin / baseline, CPU per request; own part as a share of the request', fmtRatio(p.ratio), fmtShare(p.ownShare)]] : []),
  ]);
  const out = [
    `CPU at no load and light load (${how}; ms of CPU per second of wall time, all threads):`,
    '',
    table(['phase', 'configuration', 'CPU ms/s (mean of rounds)', 'added over no profiling, ms/s [95 % interval]'], cpuRows),
    '',
  ];
  const withLatency = phases.filter((p) => p.latency);
  if (withLatency.length > 0) {
    const latencyRows = withLatency.flatMap((p) =>
      Object.entries(p.latency.figures).map(([key, f]) => [p.label, configLabel(key), ms(f.p50), ms(f.p99), ms(f.p999), ms(f.max, 1)]),
    );
    out.push(
      'Request latency under light load (ms, from when each request was due; median over rounds of each slice\'s figure; a slice holds one flush of `continuous`, and `starting` gets a session started halfway through it):',
      '',
      table(['phase', 'configuration', 'p50', 'p99', 'p99.9', 'max'], latencyRows),
      '',
      ...withLatency.map(
        (p) => `${p.label}: p99 plugin / no profiling ${fmtRatio(p.latency.p99Ratio)}; the slowest request of a slice with a flush ${signed(p.latency.flushAddsMs, 1)} ms over no profiling's, of a slice with a session start ${signed(p.latency.startAddsMs, 1)} ms.`,
      ),
      '',
    );
  }
  return out;
}

/** Issue 19's verdicts, on the intervals ('undecided' when an interval straddles the limit). */
function windowedTargets(phases, labelMode, { fmtRatio, fmtShare }) {
  const rows = [];
  const add = (target, measured, verdict) => rows.push({ target, measured, verdict });
  for (const p of phases) {
    if (p.shape === 'idle' && p.own) {
      add(`${p.label}: plugin's own CPU over the engine floor <= ${WINDOWED_TARGETS.idleOwnMsPerS} ms/s`, `${fmtMs(p.own)} ms/s`, stats.checkAtMost(p.own, WINDOWED_TARGETS.idleOwnMsPerS));
    }
    if (p.shape === 'light10' && p.ownShare && labelMode === 'cped') {
      add(`${p.label}: plugin's own cost <= ${WINDOWED_TARGETS.lightOwnShareCped * 100} % of the request (cped labels)`, fmtShare(p.ownShare), stats.checkAtMost(p.ownShare, WINDOWED_TARGETS.lightOwnShareCped));
    }
    if (p.latency && p.latency.p99Ratio) {
      add(`${p.label}: p99 within ${Math.round((WINDOWED_TARGETS.p99Ratio - 1) * 100)} % of no profiling`, fmtRatio(p.latency.p99Ratio, { word: false }), stats.checkAtMost(p.latency.p99Ratio, WINDOWED_TARGETS.p99Ratio));
    }
  }
  return rows;
}

/**
 * What one instance pays, one column per saved run (README, "What it costs"): CPU added at no
 * load and at 10 % of a core in ms per second, the plugin's own part, and what p99 and the
 * slowest requests see. `runs`: [{ run, analysis }] sorted by Node version.
 */
function perInstanceTable(runs, { table, fmtRatio, fmtShare }) {
  const phase = (analysis, id) => (analysis.windowed || []).find((p) => p.id === id);
  const added = (p, key) => p && p.rows.find((r) => r.key === key)?.added;
  const cell = (id, f) => runs.map(({ analysis }) => {
    const p = phase(analysis, id);
    const value = p && f(p);
    return value === undefined ? '-' : value;
  });
  const cores = (i) => (i && Number.isFinite(i.estimate) ? `${fmtMs(i)} (${(i.estimate / 10).toFixed(2)} % of a core)` : undefined);
  const rows = [
    ['no load: the engine (sampler, window cuts), CPU ms/s', ...cell('orders:idle', (p) => cores(added(p, 'engine')))],
    ['no load: the plugin\'s own part on top, ms/s', ...cell('orders:idle', (p) => (p.own ? fmtMs(p.own) : undefined))],
    ['no load: installed, no session, ms/s', ...cell('orders:idle', (p) => (added(p, 'idle') ? fmtMs(added(p, 'idle')) : undefined))],
    ['10 % of a core: continuous profiling, CPU added, ms/s', ...cell('orders:light10', (p) => cores(added(p, 'continuous')))],
    ['10 % of a core: the plugin\'s own part, share of a request', ...cell('orders:light10', (p) => (p.ownShare ? fmtShare(p.ownShare) : undefined))],
    ['10 % of a core: p99, continuous / no profiling', ...cell('orders:light10', (p) => (p.latency?.p99Ratio ? fmtRatio(p.latency.p99Ratio, { word: false }) : undefined))],
    ['10 % of a core: p99 no profiling / continuous, ms', ...cell('orders:light10', (p) => {
      const f = p.latency?.figures;
      return f?.baseline && f?.continuous ? `${ms(f.baseline.p99)} / ${ms(f.continuous.p99)}` : undefined;
    })],
    ['10 % of a core: slowest request of a slice, added by a flush / by a session start, ms', ...cell('orders:light10', (p) => (p.latency ? `${signed(p.latency.flushAddsMs, 1)} / ${signed(p.latency.startAddsMs, 1)}` : undefined))],
  ];
  const header = ['per instance [95 % interval]', ...runs.map(({ run, analysis }) => `Node ${run.env.nodeMajor} (${analysis.labelMode})`)];
  return table(header, rows);
}

module.exports = { WINDOWED_TARGETS, isWindowedShape, lightShare, analyzeWindowed, latencySummary, windowedTables, windowedTargets, perInstanceTable };
