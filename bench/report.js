'use strict';
/**
 * From a run's raw figures (bench/run.js) to the tables: per phase (route x load shape) each
 * configuration's CPU per request and its ratio to the baseline with a 95 % interval over the
 * paired rounds (bench/stats.js), the plugin's own cost over the engine floor, the sample-rate
 * rows, the targets of issue 15 checked against the intervals, the Markdown section of
 * bench/RESULTS.md for the Node major that ran, and the overhead table of docs/overhead.md.
 *
 *   node bench/report.js --overhead [DIR]  writes the table of docs/overhead.md from every DIR/nodeNN.json
 *                                          (default bench/results); --readme is the old name
 *   node bench/report.js FILE.json         the RESULTS.md section of one saved run
 */
const fs = require('node:fs');
const path = require('node:path');
const stats = require('./stats');
const windowed = require('./windowed-report');

const CONFIGS = [
  { key: 'baseline', label: 'baseline (no profiling)' },
  { key: 'baseline-again', label: 'baseline again (A/A: the run\'s noise floor)' },
  { key: 'engine', label: 'engine floor (@datadog/pprof as the plugin starts it; no labels, hooks, uploads)' },
  { key: 'continuous', label: 'this plugin, continuous + labels' },
  { key: 'idle', label: 'this plugin, installed idle' },
  { key: 'pyroscope', label: '@pyroscope/nodejs 0.6.4 + setLabels' },
];
/** Configurations of the no-load / light-load phases only. */
const WINDOWED_LABELS = { starting: 'this plugin, installed idle, a session started halfway through each slice' };
const EXTRA_LABELS = {
  disabled: 'x. this plugin, enabled: false (diagnosis)',
  'large-graph': 'x. baseline + require(\'typescript\') (control)',
  loaded: 'x. @datadog/pprof loaded, not started (diagnosis)',
  'idle-heap': 'x. this plugin, installed idle, heap sampler on (heapThreshold)',
  'engine-hook': 'x. engine floor + an empty onRequest hook (diagnosis)',
  'engine-labels': 'x. engine floor + onRequest entering one shared label set as the plugin does (diagnosis)',
  'engine-labels-graph': 'x. engine-labels + the plugin\'s package and @opentelemetry/api loaded, unused (diagnosis)',
  'otel-off': 'x. OpenTelemetry SDK tracing every request + this plugin, spanProfiles: false',
  'otel-spans': 'x. OpenTelemetry SDK tracing every request + this plugin, span profiles on',
  'otel-holder': 'x. as otel-off + a fresh engine context per request (CPED diagnosis)',
};

function configLabel(key) {
  const known = CONFIGS.find((c) => c.key === key);
  if (known) return known.label;
  const rate = /^continuous-(\d+)hz$/.exec(key);
  if (rate) return `this plugin, continuous, sampleRate ${rate[1]} Hz`;
  return EXTRA_LABELS[key] || WINDOWED_LABELS[key] || key;
}

/** Issue 15's targets; `own` = (plugin - engine floor) / baseline, per round. */
const TARGETS = {
  ownCost: (labelMode) => (labelMode === 'cped' ? { orders: 0.03, hello: 0.05 } : { orders: 0.15 }),
  sessionStartBlockMs: 100,
  flushBlockMs: 10,
  samplesPerProfile: 16_000,
  decompressedBytesPerProfile: 4 * 1024 * 1024,
  rssOverBaselineMB: 40,
  labelShare: 0.99,
};

const median = stats.median;

function durationMs(text) {
  const m = /^(\d+)(ms|s)$/.exec(text);
  if (!m) throw new Error(`a duration must look like "5s" or "500ms", received ${JSON.stringify(text)}`);
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}

// ------------------------------------------------------------------------------------------------
// Analysis

function analyzePhase(phase) {
  const r = phase.rounds;
  const base = r.baseline;
  const has = (key) => Array.isArray(r[key]);
  const rows = phase.configs.map((key) => ({
    key,
    label: configLabel(key),
    cpuPerRequest: median(r[key]),
    ratio: key === 'baseline' ? undefined : stats.pairedRatio(r[key], base),
    // CPU added per second of load, ms/s (the sample-rate rows' second unit)
    addedMsPerS: key === 'baseline' || !phase.busy ? undefined : scaledBy(stats.pairedDifference(phase.busy[key], phase.busy.baseline), 1000),
  }));
  const pair = (a, b) => (has(a) && has(b) ? stats.pairedRatio(r[a], r[b]) : undefined);
  const own = has('continuous') && has('engine')
    ? { micros: stats.pairedDifference(r.continuous, r.engine), share: stats.pairedShare(r.continuous, r.engine, base) }
    : undefined;
  // diagnosis runs (npm run bench:diagnosis): a - b per request, in µs and as a share of `of`
  const diff = (a, b, of = 'baseline') => (has(a) && has(b) && has(of) ? { micros: stats.pairedDifference(r[a], r[b]), share: stats.pairedShare(r[a], r[b], r[of]) } : undefined);
  const breakdown = has('engine-hook') && has('engine-labels')
    ? {
        hook: diff('engine-hook', 'engine'),
        labels: diff('engine-labels', 'engine-hook'),
        rest: diff('continuous', 'engine-labels'),
        // with engine-labels-graph: the rest split into the bigger module graph and the plugin's work
        graph: diff('engine-labels-graph', 'engine-labels'),
        work: diff('continuous', 'engine-labels-graph'),
      }
    : undefined;
  const spans = has('otel-spans') && has('otel-off')
    ? { ratio: pair('otel-spans', 'otel-off'), cost: diff('otel-spans', 'otel-off', 'otel-off'), holder: diff('otel-holder', 'otel-off', 'otel-off'), rest: diff('otel-spans', 'otel-holder', 'otel-off') }
    : undefined;
  return {
    id: `${phase.route}:${phase.shape}`,
    route: phase.route,
    shape: phase.shape,
    label: `${phase.label}, ${phase.shape}`,
    rounds: base.length,
    baselineBusy: median(phase.busy.baseline),
    rows,
    aa: pair('baseline-again', 'baseline'),
    engine: pair('engine', 'baseline'),
    continuous: pair('continuous', 'baseline'),
    idle: pair('idle', 'baseline'),
    pyroscope: pair('pyroscope', 'baseline'),
    versusPyroscope: pair('continuous', 'pyroscope'),
    own,
    breakdown,
    spans,
  };
}

function scaledBy(i, k) {
  return { ...i, estimate: i.estimate * k, low: i.low * k, high: i.high * k };
}

function minShare(accuracy) {
  if (!accuracy || !accuracy.routes) return NaN;
  return Math.min(...Object.values(accuracy.routes).map((x) => x.share));
}

/** Everything the tables show, from a run (bench/run.js's `run` object or a saved JSON). */
function analyze(run) {
  const phases = perRequestPhases(run).map(analyzePhase);
  const noAndLight = run.phases.filter((p) => windowed.isWindowedShape(p.shape)).map(windowed.analyzeWindowed);
  const anyServers = run.phases.find((p) => p.servers && p.servers.continuous);
  const labelMode = anyServers && anyServers.servers.continuous.profiler ? anyServers.servers.continuous.profiler.labelMode : undefined;
  const targets = [...evaluateTargets(run, phases, labelMode), ...windowed.windowedTargets(noAndLight, labelMode, { fmtRatio, fmtShare })];
  return { phases, windowed: noAndLight, labelMode, targets };
}

/** The phases measured per request in turns (saturating, paced); no-load and light-load ones are windowed-report.js's. */
function perRequestPhases(run) {
  return run.phases.filter((p) => !windowed.isWindowedShape(p.shape));
}

function evaluateTargets(run, phases, labelMode) {
  const rows = [];
  const add = (target, measured, verdict) => rows.push({ target, measured, verdict });
  const limits = TARGETS.ownCost(labelMode);
  const mode = labelMode === 'cped' ? `${labelMode} labels (Node 24/26)` : `${labelMode} labels (Node 20/22)`;
  for (const p of phases) {
    const limit = limits[p.route];
    if (p.own && limit !== undefined) {
      add(`${p.label}: plugin's own cost over the engine floor <= ${pct(limit, 0)} of the request (${mode})`, fmtShare(p.own.share), stats.checkAtMost(p.own.share, limit));
    }
  }
  for (const p of phases) {
    if (!p.versusPyroscope) continue;
    const where = stats.compare(p.versusPyroscope);
    add(`${p.label}: never slower than @pyroscope/nodejs beyond the noise`, `${fmtRatio(p.versusPyroscope, { word: false })} (${where})`, where === 'higher' ? 'fail' : 'pass');
  }
  for (const p of phases.filter((x) => x.route === 'orders' && x.idle)) {
    const where = stats.compare(p.idle);
    add(`${p.label}: installed idle indistinguishable from the baseline`, `${fmtRatio(p.idle, { word: false })} (${where})`, where === 'higher' ? 'fail' : 'pass');
  }
  const { accuracy, probe } = run;
  if (accuracy) {
    const ours = minShare(accuracy.ours && accuracy.ours.accuracy);
    const theirs = minShare(accuracy.pyroscope && accuracy.pyroscope.accuracy);
    add(`labels exact: worst route >= ${pct(TARGETS.labelShare, 0)} (@pyroscope/nodejs: ${pct(theirs)})`, pct(ours), ours >= TARGETS.labelShare ? 'pass' : 'fail');
  }
  const servers = run.phases.map((p) => p.servers).filter(Boolean);
  const startups = [...servers.map((s) => s.continuous && s.continuous.startup), probe && probe.continuous && probe.continuous.startup].filter(Boolean);
  if (startups.length > 0) {
    const startMs = median(startups.map((s) => s.cpuMs));
    add(`session start block <= ${TARGETS.sessionStartBlockMs} ms (CPU, median of ${startups.length} starts)`, `${startMs.toFixed(1)} ms`, startMs <= TARGETS.sessionStartBlockMs ? 'pass' : 'fail');
  }
  if (probe && probe.continuous) {
    add(
      `flush block <= ${TARGETS.flushBlockMs} ms (longest block idle across a flush, CPU${probe.continuous.cpuMsEach ? `, median of ${probe.continuous.cpuMsEach.length} flushes` : ''}; baseline ${probe.baseline.cpuMs.toFixed(1)} ms)`,
      `${probe.continuous.cpuMs.toFixed(1)} ms (wall ${probe.continuous.wallMs.toFixed(1)} ms${probe.continuous.cpuMsMax !== undefined ? `; largest ${probe.continuous.cpuMsMax.toFixed(1)} ms` : ''})`,
      probe.continuous.cpuMs <= TARGETS.flushBlockMs && probe.continuous.uploads > 0 ? 'pass' : 'fail',
    );
  }
  const ingests = servers.map((s) => s.continuous && s.continuous.ingest).filter(Boolean);
  const uploads = ingests.reduce((n, i) => n + i.uploads, 0);
  if (uploads > 0) {
    const samples = Math.max(...ingests.map((i) => i.maxSamples));
    const bytes = Math.max(...ingests.map((i) => i.maxDecompressedBytes));
    add(`profile < ${TARGETS.samplesPerProfile} samples and < 4 MiB decompressed`, `${samples} samples, ${kib(bytes)}`, samples < TARGETS.samplesPerProfile && bytes < TARGETS.decompressedBytesPerProfile ? 'pass' : 'fail');
  }
  const rss = Math.max(...servers.filter((s) => s.continuous && s.baseline).map((s) => s.continuous.maxRssMB - s.baseline.maxRssMB));
  if (Number.isFinite(rss)) add(`peak RSS over baseline <= ${TARGETS.rssOverBaselineMB} MB (worst route)`, `${rss.toFixed(1)} MB`, rss <= TARGETS.rssOverBaselineMB ? 'pass' : 'fail');
  return rows;
}

// ------------------------------------------------------------------------------------------------
// Formatting

const us = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const pct = (x, digits = 1) => (Number.isFinite(x) ? `${(x * 100).toFixed(digits)} %` : 'n/a');
const kib = (bytes) => `${(bytes / 1024).toFixed(0)} KiB`;
const signed = (x, digits) => (x >= 0 ? '+' : '') + x.toFixed(digits);

/** `1.123 [1.101, 1.145]`, and the word when the interval includes 1. */
function fmtRatio(i, { word = true } = {}) {
  if (!i || !Number.isFinite(i.estimate)) return 'n/a';
  const text = `${i.estimate.toFixed(3)} [${i.low.toFixed(3)}, ${i.high.toFixed(3)}]`;
  return word && stats.compare(i) === 'indistinguishable' ? `${text} indistinguishable` : text;
}

/** `+2.1 % [+0.4, +3.8]` of the baseline request. */
function fmtShare(i) {
  if (!i || !Number.isFinite(i.estimate)) return 'n/a';
  return `${signed(i.estimate * 100, 1)} % [${signed(i.low * 100, 1)}, ${signed(i.high * 100, 1)}]`;
}

/** `+1.23 µs [+0.40, +2.05] = +1230 ns` per request. */
function fmtMicros(i) {
  if (!i || !Number.isFinite(i.estimate)) return 'n/a';
  return `${signed(i.estimate, 2)} µs [${signed(i.low, 2)}, ${signed(i.high, 2)}] (${signed(i.estimate * 1000, 0)} ns)`;
}

function table(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function phaseTable(p) {
  return table(
    ['configuration', 'CPU µs/req (median of rounds)', 'ratio to baseline [95 % interval]'],
    p.rows.map((row) => [row.label, us(row.cpuPerRequest), row.ratio ? fmtRatio(row.ratio) : '1']),
  );
}

function comparisonTable(phases) {
  return table(
    ['phase', 'A/A (noise floor)', 'engine floor / baseline', 'plugin / baseline', 'plugin / @pyroscope/nodejs', 'installed idle / baseline', 'plugin\'s own cost over the engine floor, per request', 'own cost, share of the baseline request'],
    phases.map((p) => [
      `${p.label} (${p.rounds} rounds)`,
      fmtRatio(p.aa, { word: false }),
      fmtRatio(p.engine),
      fmtRatio(p.continuous),
      fmtRatio(p.versusPyroscope),
      fmtRatio(p.idle),
      p.own ? fmtMicros(p.own.micros) : 'n/a',
      p.own ? fmtShare(p.own.share) : 'n/a',
    ]),
  );
}

function sampleRateTable(phases) {
  const orders = phases.filter((p) => p.route === 'orders' && p.rows.some((r) => /^continuous-\d+hz$/.test(r.key)));
  if (orders.length === 0) return undefined;
  const keys = orders[0].rows.map((r) => r.key).filter((k) => k === 'engine' || k === 'continuous' || /^continuous-\d+hz$/.test(k));
  const hz = (k) => (k === 'continuous' || k === 'engine' ? 100 : Number(/(\d+)hz/.exec(k)[1]));
  keys.sort((a, b) => hz(a) - hz(b) || (a === 'engine' ? -1 : 1));
  const added = (i) => (i && Number.isFinite(i.estimate) ? `${signed(i.estimate, 2)} [${signed(i.low, 2)}, ${signed(i.high, 2)}]` : 'n/a');
  return table(
    ['sample rate', ...orders.flatMap((p) => [`${p.label}: ratio to baseline`, 'added CPU, ms/s'])],
    keys.map((k) => [
      k === 'engine' ? 'engine floor, 100 Hz (reference)' : `this plugin, ${hz(k)} Hz${k === 'continuous' ? ' (default)' : ''}`,
      ...orders.flatMap((p) => {
        const row = p.rows.find((r) => r.key === k);
        return [fmtRatio(row.ratio), added(row.addedMsPerS)];
      }),
    ]),
  );
}

/** Diagnosis runs: where the plugin's own cost goes, and what span profiles cost. */
function diagnosisTables(phases) {
  const cost = (d) => (d ? `${fmtMicros(d.micros)}; ${fmtShare(d.share)}` : 'n/a');
  const titled = (title, header, rowOf, having) => {
    const shown = phases.filter(having);
    return shown.length > 0 ? [title, '', table(['phase', ...header], shown.map((p) => [p.label, ...rowOf(p)])), ''] : [];
  };
  const graphSplit = phases.some((p) => p.breakdown && p.breakdown.graph);
  return [
    ...titled(
      'Where the plugin\'s own cost goes (each step over the one before it, per request; share of the baseline request):',
      [
        'an empty onRequest hook (engine-hook - engine floor)',
        'entering a shared label set (engine-labels - engine-hook)',
        'the rest of the plugin (continuous - engine-labels)',
        ...(graphSplit ? ['of which: its module graph, loaded unused (engine-labels-graph - engine-labels)', 'of which: its work (continuous - engine-labels-graph)'] : []),
        'own cost in all (continuous - engine floor)',
      ],
      (p) => [cost(p.breakdown.hook), cost(p.breakdown.labels), cost(p.breakdown.rest), ...(graphSplit ? [cost(p.breakdown.graph), cost(p.breakdown.work)] : []), cost(p.own)],
      (p) => p.breakdown,
    ),
    ...titled(
      'Span profiles (OpenTelemetry SDK tracing every request in both servers; per request, share of the spans-off request):',
      ['spans on / off', 'spans on - off', 'a fresh engine context per request (otel-holder - otel-off)', 'the plugin\'s span work (otel-spans - otel-holder)'],
      (p) => [fmtRatio(p.spans.ratio), cost(p.spans.cost), cost(p.spans.holder), cost(p.spans.rest)],
      (p) => p.spans,
    ),
  ];
}

function sideTable(run) {
  const byRoute = run.phases.filter((p, i, all) => all.findIndex((q) => q.route === p.route) === i);
  const keys = CONFIGS.map((c) => c.key).filter((k) => byRoute.every((p) => p.servers && p.servers[k]));
  const probe = run.probe || {};
  const routes = byRoute.map((p) => p.label).join(', ');
  return table(
    ['configuration', `event-loop delay p99 / max, ms (${routes})`, 'start block ms, CPU (wall)', 'flush block ms, CPU (wall); median [largest]', `peak RSS MB, over baseline (${routes})`, `KiB uploaded/min (${routes})`, 'largest profile: samples, decompressed'],
    keys.map((k) => {
      const per = byRoute.map((p) => p.servers[k]);
      const ingests = per.map((s) => s.ingest);
      const uploads = ingests.reduce((n, i) => n + i.uploads, 0);
      return [
        configLabel(k),
        per.map((s) => `${us(s.eldP99Ms)} / ${us(s.eldMaxMs)}`).join(', '),
        `${us(median(per.map((s) => s.startup.cpuMs)))} (${us(median(per.map((s) => s.startup.wallMs)))})`,
        probe[k] ? `${us(probe[k].cpuMs)} (${us(probe[k].wallMs)})${probe[k].cpuMsMax !== undefined ? ` [${us(probe[k].cpuMsMax)}]` : ''}` : '-',
        byRoute.map((p) => `${p.servers[k].maxRssMB.toFixed(0)} (${signed(p.servers[k].maxRssMB - p.servers.baseline.maxRssMB, 1)})`).join(', '),
        per.map((s) => (s.bytesPerMin / 1024).toFixed(0)).join(', '),
        uploads > 0 ? `${Math.max(...ingests.map((i) => i.maxSamples))}, ${kib(Math.max(...ingests.map((i) => i.maxDecompressedBytes)))}` : '-',
      ];
    }),
  );
}

/** What the rounds must have been: sessions ran where expected, none where not, nothing lost. */
function sanityLine(run, labelMode) {
  const servers = run.phases.map((p) => p.servers).filter((s, i, all) => s && all.indexOf(s) === i);
  const sum = (key, f) => servers.reduce((n, s) => n + (s[key] && s[key].profiler ? f(s[key].profiler) : 0), 0);
  const uploads = (key) => servers.reduce((n, s) => n + (s[key] ? s[key].uploadsMeasured : 0), 0);
  const floors = servers.map((s) => s.engine && s.engine.engineFloor).filter(Boolean);
  const floor = floors.length
    ? `Engine floor: ${floors.reduce((n, f) => n + f.windows, 0)} windows collected (${floors.map((f) => f.lastWindowSamples).join(', ')} CPU samples in each route's last), useCPED ${floors[0].useCPED}, ${floors.reduce((n, f) => n + f.collectFailures, 0)} failures. `
    : '';
  const spanServers = servers.filter((s) => s['otel-spans'] && s['otel-spans'].profiler && s['otel-spans'].profiler.spanProfiles);
  const spans = spanServers.length
    ? `Span profiles (otel-spans): ${spanServers.map((s) => `${s['otel-spans'].profiler.spanProfiles.labelledRequests} requests labelled, state ${s['otel-spans'].profiler.spanProfiles.state}`).join('; ')} (otel-off: ${sum('otel-off', (p) => (p.spanProfiles ? p.spanProfiles.labelledRequests : 0))}, must be 0). `
    : '';
  return (
    `Label mode: ${labelMode}. Sessions started by the installed-idle servers: ${sum('idle', (p) => p.sessions)} (must be 0). ` +
    spans +
    `Uploads received during the rounds: this plugin ${uploads('continuous')}, @pyroscope/nodejs ${uploads('pyroscope')}. ` +
    `Profiles lost or failed (this plugin): ${sum('continuous', (p) => p.dropped + p.uploadsFailed)}. ` +
    floor +
    'Start block: the longest synchronous stretch around `app.ready()`, where the profilers start and Fastify compiles the routes\' schemas (the baseline\'s figure is the latter alone).'
  );
}

function accuracyLines(accuracy) {
  if (!accuracy) return ['(label accuracy not measured)'];
  return ['ours', 'pyroscope'].map((who) => {
    const a = accuracy[who];
    if (!a) return `- ${who}: not measured`;
    if (a.error) return `- ${who}: failed: ${a.error}`;
    const cells = Object.entries(a.accuracy.routes).map(([route, e]) => `${route} ${pct(e.share)} of ${e.samples}`);
    return `- ${a.mode} (${a.labelMode}): ${cells.join(', ')}; background samples with a route: ${a.accuracy.background.withRoute}/${a.accuracy.background.samples}`;
  });
}

function phaseLine(run, p, raw) {
  const c = raw.calibration;
  const size = p.shape === 'paced'
    ? `${c.paced.amount} requests per slice at ${c.paced.rate} req/s (open loop)`
    : `${c.saturating} requests per slice, ${run.plan.connections} connections, closed loop`;
  const served = raw.achievedRate ? median(raw.achievedRate.baseline) : NaN;
  let achieved = Number.isFinite(served) ? `, ${Math.round(served)} req/s served` : '';
  // an open-loop slice that could not be served at its rate was a saturating one in disguise
  if (p.shape === 'paced' && served < 0.9 * c.paced.rate) achieved += ' (**fell behind the pace: not a paced measurement**)';
  return `**${p.label}**: ${p.rounds} rounds, ${size}; the baseline's core was ${pct(p.baselineBusy, 0)} busy during its slices${achieved}; ${raw.seconds.toFixed(0)} s.`;
}

/** The whole section for one Node version. */
function markdownSection(run, analysis) {
  const { env, plan } = run;
  const passed = analysis.targets.filter((t) => t.verdict === 'pass').length;
  const rate = sampleRateTable(analysis.phases);
  return [
    `## Node ${env.node}${env.tag ? ` (${env.tag.slice(1)})` : ''}`,
    '',
    `${env.date} · ${env.nproc} cores (${env.cpuModel}) · ${env.placement} · load average ${env.loadBefore} before, ${env.loadAfter} after · bench took ${env.elapsedS.toFixed(0)} s · label mode ${analysis.labelMode}`,
    '',
    `uploadRate ${plan.uploadRate} (every profiler), slices of about ${plan.sliceSeconds} s. Ratios: geometric mean of the per-round ratios, ` +
      '[95 % bootstrap interval over the paired rounds]; "indistinguishable" where the interval includes 1.' +
      (plan.quick ? ' **BENCH_QUICK: smoke test, figures not meaningful.**' : ''),
    '',
    comparisonTable(analysis.phases),
    '',
    ...(rate ? ['Sample rate (this plugin, continuous, on the realistic route):', '', rate, ''] : []),
    ...diagnosisTables(analysis.phases),
    ...windowed.windowedTables(analysis.windowed || [], { table, configLabel, fmtRatio, fmtShare, turns: Boolean(run.plan && run.plan.windowedTurns) }),
    ...analysis.phases.flatMap((p, i) => [phaseLine(run, p, perRequestPhases(run)[i]), '', phaseTable(p), '']),
    sideTable(run),
    '',
    sanityLine(run, analysis.labelMode),
    '',
    'Label accuracy (share of each route\'s own CPU samples labelled with that route):',
    '',
    ...accuracyLines(run.accuracy),
    '',
    `Targets (${passed}/${analysis.targets.length} pass; "undecided": the interval straddles the limit):`,
    '',
    table(['target', 'measured', ''], analysis.targets.map((t) => [t.target, t.measured, t.verdict === 'pass' ? 'pass' : `**${t.verdict}**`])),
  ].join('\n');
}

/** The overhead table of docs/overhead.md, one column per Node version run. */
function overheadTable(runs) {
  const sorted = [...runs].sort((a, b) => a.run.env.nodeMajor - b.run.env.nodeMajor || String(a.run.env.tag || '').localeCompare(String(b.run.env.tag || '')));
  const phase = (a, id) => a.phases.find((p) => p.id === id);
  const cell = (id, f) => sorted.map(({ analysis }) => {
    const p = phase(analysis, id);
    return p ? f(p) : '-';
  });
  const compact = (i) => (i && Number.isFinite(i.estimate) ? `${i.estimate.toFixed(2)} [${i.low.toFixed(2)}-${i.high.toFixed(2)}]` : '-');
  const verdict = (i) => {
    const w = stats.compare(i);
    return w === 'indistinguishable' ? `${compact(i)} tie` : `${compact(i)} ${w === 'higher' ? 'slower' : 'faster'}`;
  };
  const rows = [];
  const add = (label, values) => rows.push([label, ...values]);
  add('this plugin, continuous: `/orders` (realistic), saturating', cell('orders:saturating', (p) => compact(p.continuous)));
  add('this plugin, continuous: `/orders`, paced at half a core', cell('orders:paced', (p) => compact(p.continuous)));
  add('this plugin, continuous: `/hello` (trivial: worst case), saturating', cell('hello:saturating', (p) => compact(p.continuous)));
  add('this plugin, continuous: `/ping` (greet), saturating', cell('ping:saturating', (p) => compact(p.continuous)));
  add('engine floor (@datadog/pprof alone, as the plugin starts it): `/orders`, saturating', cell('orders:saturating', (p) => compact(p.engine)));
  add('plugin\'s own cost over the engine floor: `/orders`, saturating', cell('orders:saturating', (p) => (p.own ? `${fmtShare(p.own.share)}, ${signed(p.own.micros.estimate * 1000, 0)} ns/req` : '-')));
  add('plugin\'s own cost over the engine floor: `/hello`, saturating', cell('hello:saturating', (p) => (p.own ? `${fmtShare(p.own.share)}, ${signed(p.own.micros.estimate * 1000, 0)} ns/req` : '-')));
  add('@pyroscope/nodejs 0.6.4 + `setLabels`: `/orders`, saturating', cell('orders:saturating', (p) => compact(p.pyroscope)));
  add('this plugin / @pyroscope/nodejs: `/orders`, saturating', cell('orders:saturating', (p) => verdict(p.versusPyroscope)));
  add('this plugin / @pyroscope/nodejs: `/hello`, saturating', cell('hello:saturating', (p) => verdict(p.versusPyroscope)));
  add('installed, idle: `/orders`, saturating', cell('orders:saturating', (p) => compact(p.idle)));
  add('A/A (two identical baselines: the run\'s noise): `/orders`, saturating', cell('orders:saturating', (p) => compact(p.aa)));
  add('route label accuracy, worst route: this plugin / @pyroscope/nodejs', sorted.map(({ run }) => {
    const a = run.accuracy;
    return a ? `**${pct(minShare(a.ours && a.ours.accuracy), 0)}** / ${pct(minShare(a.pyroscope && a.pyroscope.accuracy), 0)}` : '-';
  }));
  add('flush block (CPU): this plugin / @pyroscope/nodejs', sorted.map(({ run }) => (run.probe && run.probe.continuous ? `${us(run.probe.continuous.cpuMs)} / ${us(run.probe.pyroscope.cpuMs)} ms` : '-')));
  const header = ['ratio to no profiling, CPU per request [95 % interval]', ...sorted.map(({ run, analysis }) => `Node ${run.env.nodeMajor} (${analysis.labelMode})`)];
  return table(header, rows);
}

/** Replaces (or adds) this Node major's section in RESULTS.md, leaving the rest of the file alone. */
function writeResults(file, sectionKey, section) {
  const start = `<!-- bench:node${sectionKey}:start -->`;
  const end = `<!-- bench:node${sectionKey}:end -->`;
  const block = `${start}\n${section}\n${end}`;
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmark results\n\nWritten by `npm run bench` (bench/run.js).\n';
  const at = text.indexOf(start);
  const until = text.indexOf(end);
  if (at >= 0 && until > at) {
    text = text.slice(0, at) + block + text.slice(until + end.length);
  } else {
    const anchor = text.indexOf('<!-- bench:sections-end -->');
    text = anchor >= 0 ? `${text.slice(0, anchor)}${block}\n\n${text.slice(anchor)}` : `${text.trimEnd()}\n\n${block}\n`;
  }
  fs.writeFileSync(file, text);
}

const OVERHEAD_DOC = path.join(__dirname, '..', 'docs', 'overhead.md');
const TABLE_START = '<!-- overhead-table:start';
const TABLE_END = '<!-- overhead-table:end -->';

const README = path.join(__dirname, '..', 'README.md');
const PER_INSTANCE_START = '<!-- per-instance-table:start';
const PER_INSTANCE_END = '<!-- per-instance-table:end -->';

/** Replaces the table between docs/overhead.md's markers, leaving the rest of the page alone. */
function writeOverheadTable(file, tableText) {
  writeBetween(file, TABLE_START, TABLE_END, tableText);
}

/** Replaces what is between a `start ... -->` line and `end` in `file`, leaving the rest alone. */
function writeBetween(file, start, end, tableText) {
  const text = fs.readFileSync(file, 'utf8');
  const at = text.indexOf(start);
  const until = text.indexOf(end);
  if (at < 0 || until < at) throw new Error(`${file} has no "${start} ... -->" / "${end}" markers to write the table between`);
  const startLineEnd = text.indexOf('\n', at) + 1;
  fs.writeFileSync(file, `${text.slice(0, startLineEnd)}${tableText}\n${text.slice(until)}`);
}

module.exports = { isWindowedShape: windowed.isWindowedShape, lightShare: windowed.lightShare, writeOverheadTable, overheadTable, CONFIGS, TARGETS, configLabel, median, durationMs, analyze, markdownSection, writeResults, table, fmtRatio };

if (require.main === module) {
  const args = process.argv.slice(2);
  if (args[0] === '--overhead' || args[0] === '--readme') {
    const dir = args[1] ? path.resolve(args[1]) : path.join(__dirname, 'results');
    const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /^node\d+(-[\w-]+)?\.json$/.test(f) && !f.endsWith('-diagnosis.json')) : [];
    if (files.length === 0) {
      console.error(`no saved runs in ${dir} (npm run bench writes bench/results/nodeNN.json)`);
      process.exitCode = 1;
    } else {
      const runs = files.map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'))).map((run) => ({ run, analysis: analyze(run) }));
      writeOverheadTable(OVERHEAD_DOC, overheadTable(runs));
      console.log(`wrote the overhead table of ${path.relative(process.cwd(), OVERHEAD_DOC)} from ${files.length} runs`);
      const sorted = [...runs].sort((a, b) => a.run.env.nodeMajor - b.run.env.nodeMajor || String(a.run.env.tag || '').localeCompare(String(b.run.env.tag || '')));
      const withWindowed = sorted.filter(({ analysis }) => (analysis.windowed || []).length > 0);
      if (withWindowed.length > 0) {
        writeBetween(README, PER_INSTANCE_START, PER_INSTANCE_END, windowed.perInstanceTable(withWindowed, { table, fmtRatio, fmtShare }));
        console.log(`wrote the per-instance table of README.md from ${withWindowed.length} runs with no-load and light-load phases`);
      }
    }
  } else if (args[0]) {
    const run = JSON.parse(fs.readFileSync(args[0], 'utf8'));
    console.log(markdownSection(run, analyze(run)));
  } else {
    console.error('usage: node bench/report.js --overhead [DIR] | node bench/report.js RUN.json');
    process.exitCode = 2;
  }
}
