/**
 * bench/report.js: issue 15's targets judged on the intervals, on a synthetic run (no server, no
 * timing: the figures are made up so each verdict is known in advance).
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Verdict {
  target: string;
  measured: string;
  verdict: string;
}
interface Analysis {
  labelMode: string;
  phases: { id: string; own?: { share: { estimate: number } }; versusPyroscope?: { estimate: number } }[];
  targets: Verdict[];
}
interface Report {
  analyze(run: unknown): Analysis;
  markdownSection(run: unknown, analysis: Analysis): string;
  overheadTable(runs: { run: unknown; analysis: Analysis }[]): string;
  writeOverheadTable(file: string, table: string): void;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const report = require('../bench/report') as Report;

const ROUNDS = 10;
/** Per-round CPU µs per request: `base` x factor, the machine's speed moving every configuration alike. */
const series = (factor: number, jitter = 0.002): number[] =>
  Array.from({ length: ROUNDS }, (_, i) => 100 * (1 + 0.3 * Math.sin(i)) * factor * (1 + jitter * Math.cos(7 * i + factor * 13)));

function server(labelMode: string, sessions = 0) {
  return {
    eldP99Ms: 10,
    eldMaxMs: 20,
    maxRssMB: 100,
    startup: { cpuMs: 30, wallMs: 35 },
    uploadsMeasured: 4,
    bytesPerMin: 30_000,
    ingest: { uploads: 4, bytes: 40_000, maxSamples: 50, maxDecompressedBytes: 8000 },
    profiler: { labelMode, sessions, dropped: 0, uploadsFailed: 0 },
  };
}

function phase(route: string, shape: string, factors: Record<string, number>, labelMode: string) {
  const configs = Object.keys(factors);
  return {
    route,
    url: `/${route}`,
    label: `/${route}`,
    shape,
    configs,
    calibration: { saturating: 1000, paced: { rate: 500, amount: 1000 } },
    rounds: Object.fromEntries(configs.map((c) => [c, series(factors[c])])),
    busy: Object.fromEntries(configs.map((c) => [c, series(0.01)])),
    seconds: 60,
    servers: Object.fromEntries(configs.map((c) => [c, server(labelMode)])),
  };
}

function run(labelMode: string, orders: Record<string, number>, hello: Record<string, number>) {
  return {
    env: { node: 'v24.0.0', nodeMajor: 24, date: 'd', nproc: 2, cpuModel: 'cpu', placement: 'pinned', loadBefore: '0', loadAfter: '0', elapsedS: 600 },
    plan: { quick: false, connections: 50, sliceSeconds: 2, uploadRate: '15s' },
    phases: [phase('orders', 'saturating', orders, labelMode), phase('hello', 'saturating', hello, labelMode)],
    probe: {},
    accuracy: undefined,
  };
}

const verdictOf = (analysis: Analysis, fragment: string): string => {
  const row = analysis.targets.find((t) => t.target.includes(fragment));
  if (!row) throw new Error(`no target row with ${fragment}: ${analysis.targets.map((t) => t.target).join(' / ')}`);
  return row.verdict;
};

describe('bench report: targets on intervals', () => {
  const good = { baseline: 1, 'baseline-again': 1, engine: 1.1, continuous: 1.11, idle: 1, pyroscope: 1.2 };

  test('CPED: own cost 1 % of the request on /orders passes; 10 % on /hello fails; idle and @pyroscope/nodejs judged', () => {
    const r = run('cped', good, { ...good, continuous: 1.2 });
    const a = report.analyze(r);
    expect(a.labelMode).toBe('cped');
    const orders = a.phases.find((p) => p.id === 'orders:saturating');
    expect(orders?.own?.share.estimate).toBeCloseTo(0.01, 2);
    expect(verdictOf(a, '/orders, saturating: plugin\'s own cost')).toBe('pass');
    expect(verdictOf(a, '/hello, saturating: plugin\'s own cost')).toBe('fail');
    expect(verdictOf(a, '/orders, saturating: never slower')).toBe('pass');
    expect(verdictOf(a, 'installed idle')).toBe('pass');
    const section = report.markdownSection(r, a);
    expect(section).toContain('## Node v24.0.0');
    expect(section).toContain('indistinguishable'); // the A/A and idle rows
    expect(report.overheadTable([{ run: r, analysis: a }])).toContain('Node 24 (cped)');
  });

  test('slower than @pyroscope/nodejs beyond the noise fails; an idle plugin costing 5 % fails', () => {
    const a = report.analyze(run('cped', { ...good, continuous: 1.3, idle: 1.05 }, good));
    expect(verdictOf(a, '/orders, saturating: never slower')).toBe('fail');
    expect(verdictOf(a, 'installed idle')).toBe('fail');
  });

  test('async-hook labels get the 15 % limit on /orders and no /hello limit', () => {
    const a = report.analyze(run('async-hooks', { ...good, continuous: 1.2 }, { ...good, continuous: 1.5 }));
    expect(verdictOf(a, '/orders, saturating: plugin\'s own cost over the engine floor <= 15 %')).toBe('pass');
    expect(a.targets.some((t) => t.target.includes('/hello, saturating: plugin\'s own cost'))).toBe(false);
  });

  test('a noisy run is undecided rather than passed or failed', () => {
    const noisy = run('cped', good, good);
    // continuous scatters +-20 % around the floor from round to round
    noisy.phases[0].rounds.continuous = noisy.phases[0].rounds.engine.map((x, i) => x * (1.02 + (i % 2 ? 0.2 : -0.2)));
    const a = report.analyze(noisy);
    expect(verdictOf(a, '/orders, saturating: plugin\'s own cost')).toBe('undecided');
  });
});

describe('bench report: diagnosis runs (npm run bench:diagnosis)', () => {
  const diagnosis = {
    baseline: 1,
    'baseline-again': 1,
    engine: 1.1,
    'engine-hook': 1.12,
    'engine-labels': 1.15,
    continuous: 1.2,
    'otel-off': 3,
    'otel-holder': 3.3,
    'otel-spans': 3.33,
  };

  test('the own cost is split into hook, label entry and the rest; span profiles into engine context and plugin work', () => {
    const r = run('cped', diagnosis, diagnosis);
    const a = report.analyze(r) as Analysis & {
      phases: { breakdown?: Record<string, { share: { estimate: number } }>; spans?: Record<string, { share: { estimate: number } }> }[];
    };
    const orders = a.phases[0];
    // shares of the baseline request: 0.02 + 0.03 + 0.05 = the own cost 0.10
    expect(orders.breakdown?.hook.share.estimate).toBeCloseTo(0.02, 2);
    expect(orders.breakdown?.labels.share.estimate).toBeCloseTo(0.03, 2);
    expect(orders.breakdown?.rest.share.estimate).toBeCloseTo(0.05, 2);
    // span shares are of the spans-off request: 0.3 / 3 = 10 % the engine context, 0.03 / 3 = 1 % ours
    expect(orders.spans?.holder.share.estimate).toBeCloseTo(0.1, 2);
    expect(orders.spans?.rest.share.estimate).toBeCloseTo(0.01, 2);
    const section = report.markdownSection(r, a);
    expect(section).toContain('Where the plugin\'s own cost goes');
    expect(section).toContain('Span profiles (OpenTelemetry SDK');
    expect(section).toContain('x. engine floor + an empty onRequest hook (diagnosis)');
  });

  test('a run without the diagnosis servers has neither table', () => {
    const good = { baseline: 1, 'baseline-again': 1, engine: 1.1, continuous: 1.11, idle: 1, pyroscope: 1.2 };
    const r = run('cped', good, good);
    const section = report.markdownSection(r, report.analyze(r));
    expect(section).not.toContain('Where the plugin\'s own cost goes');
    expect(section).not.toContain('Span profiles (OpenTelemetry SDK');
  });
});

describe('the overhead table of docs/overhead.md', () => {
  test('is written between its markers, the rest of the page kept; a page without markers is an error naming them', () => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'overhead-doc-'));
    const file = join(dir, 'overhead.md');
    fs.writeFileSync(file, 'before\n<!-- overhead-table:start: written by x -->\n| old |\n<!-- overhead-table:end -->\nafter\n');
    report.writeOverheadTable(file, '| new |\n| --- |');
    expect(fs.readFileSync(file, 'utf8')).toBe('before\n<!-- overhead-table:start: written by x -->\n| new |\n| --- |\n<!-- overhead-table:end -->\nafter\n');
    fs.writeFileSync(file, 'no markers\n');
    expect(() => report.writeOverheadTable(file, '| new |')).toThrow(/overhead-table:start/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('docs/overhead.md has the markers', () => {
    const page = fs.readFileSync(join(__dirname, '..', 'docs', 'overhead.md'), 'utf8');
    expect(page).toContain('<!-- overhead-table:start');
    expect(page).toContain('<!-- overhead-table:end -->');
  });
});

describe('bench report: no load and light load (issue 19)', () => {
  const latency = (p99: number, max: number) => ({ p50: 1, p99, p999: p99 + 1, max, n: 1000 });
  /** busy = share of a core per round (ms/ms); the machine moves every configuration alike */
  const busySeries = (msPerS: number) => Array.from({ length: ROUNDS }, (_, i) => (msPerS / 1000) * (1 + 0.05 * Math.sin(i)));
  function windowedPhase(shape: string, msPerS: Record<string, number>, extra: { perRequest?: Record<string, number>; latency?: Record<string, [number, number]> } = {}) {
    const configs = Object.keys(msPerS);
    return {
      route: 'orders',
      url: '/orders',
      label: '/orders',
      shape,
      configs,
      calibration: { saturating: 1000, light: { rate: 100, amount: 1500 } },
      rounds: Object.fromEntries(configs.map((c) => [c, extra.perRequest ? series(extra.perRequest[c]) : new Array(ROUNDS).fill(NaN)])),
      busy: Object.fromEntries(configs.map((c) => [c, busySeries(msPerS[c])])),
      ...(extra.latency ? { latency: Object.fromEntries(configs.map((c) => [c, Array.from({ length: ROUNDS }, (_, i) => latency(extra.latency![c][0] * (1 + 0.01 * Math.cos(i)), extra.latency![c][1]))])) } : {}),
      seconds: 60,
      servers: Object.fromEntries(configs.map((c) => [c, server('cped')])),
    };
  }
  function windowedRun(ownIdleMs: number, lightOwn: number, p99Plugin: number) {
    const base = run('cped', { baseline: 1, engine: 1.01, continuous: 1.02 }, { baseline: 1, engine: 1, continuous: 1 });
    base.phases.push(
      windowedPhase('idle', { baseline: 0.03, engine: 4, continuous: 4 + ownIdleMs, idle: 0.05 }) as never,
      windowedPhase('light10', { baseline: 100, engine: 104, continuous: 104 + 10 * lightOwn * 100, starting: 106 }, {
        perRequest: { baseline: 1, engine: 1.04, continuous: 1.04 + lightOwn, starting: 1.06 },
        latency: { baseline: [5, 8], engine: [5, 20], continuous: [5 * p99Plugin, 18], starting: [5, 98] },
      }) as never,
    );
    return base;
  }

  test('own idle CPU, own cost at 10 % of a core and p99 are judged on their intervals; per-request tables leave these phases out', () => {
    const good = report.analyze(windowedRun(0.2, 0.01, 1.01));
    expect(verdictOf(good, 'no load: plugin\'s own CPU over the engine floor <= 0.5 ms/s')).toBe('pass');
    expect(verdictOf(good, 'paced at 10 % of a core: plugin\'s own cost <= 3 % of the request (cped labels)')).toBe('pass');
    expect(verdictOf(good, 'paced at 10 % of a core: p99 within 5 % of no profiling')).toBe('pass');
    expect(good.phases.map((p) => p.id)).toEqual(['orders:saturating', 'hello:saturating']);

    const bad = report.analyze(windowedRun(1.5, 0.08, 1.3));
    expect(verdictOf(bad, 'no load: plugin\'s own CPU')).toBe('fail');
    expect(verdictOf(bad, 'plugin\'s own cost <= 3 %')).toBe('fail');
    expect(verdictOf(bad, 'p99 within 5 %')).toBe('fail');
  });

  test('the section shows CPU in ms/s with the own part, latency percentiles and what a flush and a session start add', () => {
    const r = windowedRun(0.2, 0.01, 1.01);
    const section = report.markdownSection(r, report.analyze(r));
    // own part at no load: 0.2 ms/s over the engine floor's 4 ms/s
    expect(section).toMatch(/\/orders, no load \(10 rounds\) \| engine floor [^|]* \| 4\.04 \|/);
    expect(section).toMatch(/\| \/orders, no load \| \*\*plugin's own part \(continuous - engine floor\)\*\* \| {2}\| \*\*\+0\.20 \[/);
    expect(section).toMatch(/\| \/orders, paced at 10 % of a core \| this plugin, installed idle, a session started halfway through each slice \| 1\.00 \| 5\.00 \| 6\.00 \| 98\.0 \|/);
    // max - max, median over rounds: a flush 18 - 8, a session start 98 - 8
    expect(section).toContain('the slowest request of a slice with a flush +10.0 ms over no profiling\'s, of a slice with a session start +90.0 ms');
  });
});
