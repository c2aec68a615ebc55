import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Profile } from 'pprof-format';
import { main } from '../src/cli';
import { FileExporter, profileFileName } from '../src/exporters/file';
import { buildReport, functionName, NO_ROUTE, type ReportData } from '../src/report/aggregate';
import { routeMatcher, runReportCommand } from '../src/report/command';
import { loadReport, ReportInputError } from '../src/report/read-profiles';
import { formatTable } from '../src/report/table';
import type { MinimalLogger } from '../src/types';
import {
  buildProfile,
  CPU_TYPES,
  encodedProfile,
  KNOWN_WINDOWS,
  MS,
  PING_FILE,
  WALL_TYPES,
  type ProfileSpec,
} from './fixtures/report-profiles';

const silent: MinimalLogger = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };

/** As the report reads them: encoded and decoded again. */
function decoded(spec: ProfileSpec): Profile {
  return Profile.decode(buildProfile(spec).encode());
}

function knownReport(options: Parameters<typeof buildReport>[1] = {}): ReportData {
  return buildReport(KNOWN_WINDOWS.map(decoded), options);
}

describe('buildReport on a known input', () => {
  const report = knownReport();

  it('uses the cpu sample type and sums both windows', () => {
    expect(report.sampleType).toEqual({ type: 'cpu', unit: 'nanoseconds' });
    expect(report.profileCount).toBe(2);
    expect(report.total).toBe(1000 * MS);
    expect(report.startMs).toBe(Date.UTC(2026, 10, 26, 7, 0, 0));
    expect(report.endMs).toBe(Date.UTC(2026, 10, 26, 7, 0, 30));
  });

  it('groups by the route label, largest first, samples without one under (no route)', () => {
    expect(report.routes.map((r) => [r.route, r.total, r.share])).toEqual([
      ['/ping', 700 * MS, 0.7],
      ['/users/:id', 200 * MS, 0.2],
      [NO_ROUTE, 100 * MS, 0.1],
    ]);
  });

  it('ranks functions by self time with their share of the route and of the whole', () => {
    const ping = report.routes[0]!;
    expect(ping.functions).toEqual([
      {
        name: 'simulateCPULoad',
        location: `${PING_FILE}:3`,
        self: 600 * MS,
        total: 600 * MS,
        selfShareOfRoute: 600 / 700,
        selfShareOfAll: 0.6,
        totalShareOfRoute: 600 / 700,
        totalShareOfAll: 0.6,
      },
      {
        name: 'pingHandler',
        location: '/srv/greet/internal/handler/pinghandler.ts:5',
        self: 100 * MS,
        total: 700 * MS,
        selfShareOfRoute: 100 / 700,
        selfShareOfAll: 0.1,
        totalShareOfRoute: 1,
        totalShareOfAll: 0.7,
      },
    ]);
  });

  it('ranks by total (inclusive) time on request, and cuts at top N', () => {
    const byTotal = knownReport({ sortBy: 'total', top: 2 });
    expect(byTotal.routes[0]!.functions.map((f) => [f.name, f.total])).toEqual([
      ['main', 700 * MS],
      ['pingHandler', 700 * MS],
    ]);
  });

  it('keeps a flame tree per route: root named after the route, inclusive values', () => {
    expect(report.routes[0]!.flame).toEqual({
      n: '/ping',
      f: '',
      v: 700 * MS,
      c: [
        {
          n: 'main',
          f: '/srv/greet/greet.ts:10',
          v: 700 * MS,
          c: [
            {
              n: 'pingHandler',
              f: '/srv/greet/internal/handler/pinghandler.ts:5',
              v: 700 * MS,
              c: [{ n: 'simulateCPULoad', f: `${PING_FILE}:3`, v: 600 * MS }],
            },
          ],
        },
      ],
    });
  });

  it('keeps shares relative to all routes when a route filter hides some', () => {
    const filtered = knownReport({ routeFilter: routeMatcher('/users/*') });
    expect(filtered.routes.map((r) => [r.route, r.share])).toEqual([['/users/:id', 0.2]]);
    expect(filtered.hiddenRoutes).toBe(2);
  });

  it('counts a recursive function once in its total time', () => {
    const recursive = buildReport([
      decoded({
        sampleTypes: CPU_TYPES,
        samples: [
          { stack: ['walk@/a.ts:1', 'walk@/a.ts:1', 'walk@/a.ts:1', 'visit@/a.ts:9'], labels: { route: '/r' }, values: [1, 30 * MS] },
          { stack: ['walk@/a.ts:1'], labels: { route: '/r' }, values: [1, 10 * MS] },
        ],
      }),
    ]);
    const walk = recursive.routes[0]!.functions.find((f) => f.name === 'walk')!;
    expect(walk).toMatchObject({ self: 10 * MS, total: 40 * MS, totalShareOfRoute: 1 });
  });

  it('falls back to wall time when no profile has cpu, and says so', () => {
    const wallOnly = buildReport([
      decoded({ sampleTypes: WALL_TYPES, samples: [{ stack: ['idle@/a.ts:1'], labels: { route: '/w' }, values: [1, 5 * MS] }] }),
    ]);
    expect(wallOnly.sampleType).toEqual({ type: 'wall', unit: 'nanoseconds' });
    expect(formatTable(wallOnly).split('\n')[0]).toBe(
      "Wall time (sample type 'wall', nanoseconds) from 1 profile, 2026-11-26 07:00:00Z to 2026-11-26 07:00:15Z; total 5.0 ms",
    );
  });
});

describe('formatTable', () => {
  it('prints the route summary and per route the hottest functions, aligned', () => {
    expect(formatTable(knownReport())).toBe(
      [
        "CPU time (sample type 'cpu', nanoseconds) from 2 profiles, 2026-11-26 07:00:00Z to 2026-11-26 07:00:30Z; total 1.00 s",
        '',
        'Route       CPU time  Share  Hottest function (self)',
        '/ping       700.0 ms  70.0%  simulateCPULoad',
        '/users/:id  200.0 ms  20.0%  stringify',
        '(no route)  100.0 ms  10.0%  (garbage collector)',
        '',
        '/ping: 700.0 ms, 70.0% of all CPU time; top 10 functions by self time',
        '      Self  % route  % all     Total  % route  Function         Location',
        '  600.0 ms    85.7%  60.0%  600.0 ms    85.7%  simulateCPULoad  /srv/greet/internal/logic/pinglogic.ts:3',
        '  100.0 ms    14.3%  10.0%  700.0 ms   100.0%  pingHandler      /srv/greet/internal/handler/pinghandler.ts:5',
        '',
        '/users/:id: 200.0 ms, 20.0% of all CPU time; top 10 functions by self time',
        '      Self  % route  % all     Total  % route  Function   Location',
        '  150.0 ms    75.0%  15.0%  150.0 ms    75.0%  stringify  node:internal/json:1',
        '   50.0 ms    25.0%   5.0%  200.0 ms   100.0%  getUser    /srv/greet/internal/logic/userlogic.ts:7',
        '',
        '(no route): 100.0 ms, 10.0% of all CPU time; top 10 functions by self time',
        '      Self  % route  % all     Total  % route  Function             Location',
        '  100.0 ms   100.0%  10.0%  100.0 ms   100.0%  (garbage collector)  -',
        '',
      ].join('\n'),
    );
  });
});

describe('routeMatcher', () => {
  it('matches a substring, or a whole-route glob with *', () => {
    expect(routeMatcher('ping')('/ping')).toBe(true);
    expect(routeMatcher('ping')('/users/:id')).toBe(false);
    expect(routeMatcher('/users/*')('/users/:id')).toBe(true);
    expect(routeMatcher('/users/*')('/api/users/:id')).toBe(false);
    expect(routeMatcher('/a.b*')('/axb')).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// From files on disk, as the file exporter writes them.

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'fcp-report-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** The known windows as the plugin would leave them: cpu and wall files per window, and a heap file. */
async function writeRecording(target: string): Promise<void> {
  const exporter = new FileExporter({ dir: target, appName: 'greet', maxFiles: 100, maxBytes: 1 << 30, logger: silent });
  for (const window of KNOWN_WINDOWS) {
    // A wall profile that also carries cpu time: must not be counted a second time.
    const wall = { ...window, sampleTypes: [...WALL_TYPES, ['cpu', 'nanoseconds'] as const], samples: window.samples.map((s) => ({ ...s, values: [...s.values, ...s.values.slice(1)] })) };
    await exporter.export([encodedProfile('cpu', window), encodedProfile('wall', wall)]);
  }
  await exporter.export([
    encodedProfile('heap', { sampleTypes: [['objects', 'count'], ['space', 'bytes']], samples: [{ stack: ['alloc@/a.ts:1'], values: [1, 64] }] }),
  ]);
  await exporter.close(1000);
  expect(exporter.stats()).toMatchObject({ uploadsOk: 5, dropped: 0 });
}

describe('loadReport', () => {
  it('reads the cpu files of a recording into the same report, and says what it skipped', async () => {
    await writeRecording(dir);
    await fsp.writeFile(path.join(dir, 'broken.pb.gz'), 'not a profile');
    await fsp.writeFile(path.join(dir, `.${profileFileName('greet', 'cpu', 0)}.1.0.tmp`), 'half');

    const report = await loadReport([dir]);
    const expected = knownReport();
    expect(report.routes).toEqual(expected.routes);
    expect(report.total).toBe(expected.total);
    expect(report.appNames).toEqual(['greet']);
    expect(report.profileCount).toBe(2);

    const reasons = report.skipped.map((s) => [path.basename(s.source).replace(/\d{4}-.*Z\.pid\d+/, 'TIME'), s.reason]);
    expect(reasons).toEqual(
      expect.arrayContaining([
        ['broken.pb.gz', expect.stringMatching(/^not a readable pprof profile/)],
        ['greet.wall.TIME.pb.gz', 'a wall profile; the report reads the cpu profiles'],
        ['greet.heap.TIME.pb.gz', 'a heap profile; the report reads the cpu profiles'],
      ]),
    );
    expect(report.skipped).toHaveLength(4);
    const notUsed = formatTable(report).split('4 inputs not used:\n')[1]!.split('\n');
    expect(notUsed.map((l) => l.replace(/\S*(greet\.\w+)\.\d{4}-[^ :)]*/g, '$1.TIME.pb.gz').replace(dir, 'DIR'))).toEqual([
      expect.stringMatching(/^ {2}DIR\/broken\.pb\.gz: not a readable pprof profile: .+/),
      '  greet.heap.TIME.pb.gz: a heap profile; the report reads the cpu profiles',
      '  2 files (e.g. greet.wall.TIME.pb.gz): a wall profile; the report reads the cpu profiles',
      '',
    ]);
  });

  it('names a missing directory in its error', async () => {
    const missing = path.join(dir, 'nope');
    await expect(loadReport([missing])).rejects.toThrow(new ReportInputError(`${missing}: no such file or directory (expected a directory of *.pb.gz profile files)`));
  });

  it('says when a directory holds no profile files', async () => {
    await expect(loadReport([dir])).rejects.toThrow(`${dir}: no profile files (*.pb.gz) found; is this the plugin's outputDir?`);
  });

  it('says why when no file is usable', async () => {
    await fsp.writeFile(path.join(dir, 'broken.pb.gz'), 'garbage');
    await expect(loadReport([dir])).rejects.toThrow(/none of the 1 profile files could be used:\n.*broken\.pb\.gz: not a readable pprof profile/);
  });
});

// ---------------------------------------------------------------------------------------------

function capture(): { io: { stdout: (t: string) => void; stderr: (t: string) => void }; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { io: { stdout: (t) => (out += t), stderr: (t) => (err += t) }, out: () => out, err: () => err };
}

describe('the report command', () => {
  it('prints the table, writes the HTML pages and says where they are', async () => {
    await writeRecording(dir);
    const htmlDir = path.join(dir, 'html');
    const c = capture();
    expect(await runReportCommand([dir, '--top', '1', '--html', htmlDir], c.io)).toBe(0);
    expect(c.err()).toBe('');
    expect(c.out()).toContain(
      '  600.0 ms    85.7%  60.0%  600.0 ms    85.7%  simulateCPULoad  /srv/greet/internal/logic/pinglogic.ts:3',
    );
    expect(c.out()).not.toContain('pingHandler'); // --top 1
    expect(c.out()).toContain(`all routes: ${path.join(htmlDir, 'index.html')}`);
    expect(c.out()).toContain(`/ping: ${path.join(htmlDir, 'route-ping.html')}`);
    expect((await fsp.readdir(htmlDir)).sort()).toEqual(['index.html', 'route-no_route.html', 'route-ping.html', 'route-users_id.html']);
  });

  it('filters routes with --route', async () => {
    await writeRecording(dir);
    const c = capture();
    expect(await runReportCommand([dir, '--route', '/users/*'], c.io)).toBe(0);
    expect(c.out()).toContain('/users/:id: 200.0 ms, 20.0% of all CPU time');
    expect(c.out()).not.toContain('/ping:');
    expect(c.out()).toContain('(2 other routes not shown)');

    const none = capture();
    expect(await runReportCommand([dir, '--route', '/nothing'], none.io)).toBe(1);
    expect(none.err()).toBe("error: no route matches --route '/nothing' (3 routes in the profiles)\n");
  });

  it('exits 1 with a clear message for a missing directory or no profiles', async () => {
    const missing = capture();
    expect(await main(['report', path.join(dir, 'nope')], missing.io)).toBe(1);
    expect(missing.err()).toBe(`error: ${path.join(dir, 'nope')}: no such file or directory (expected a directory of *.pb.gz profile files)\n`);

    const empty = capture();
    expect(await main(['report', dir], empty.io)).toBe(1);
    expect(empty.err()).toContain('no profile files (*.pb.gz) found');
  });

  it('exits 2 on a bad command line, and --help prints the usage', async () => {
    const badTop = capture();
    expect(await main(['report', dir, '--top', 'many'], badTop.io)).toBe(2);
    expect(badTop.err()).toMatch(/^error: --top must be a whole number >= 1, got 'many'\n\nUsage: fastify-continuous-profiling report/);

    const unknown = capture();
    expect(await main(['frobnicate'], unknown.io)).toBe(2);
    expect(unknown.err()).toContain("error: unknown command 'frobnicate' (expected 'report')");

    const help = capture();
    expect(await main(['report', '--help'], help.io)).toBe(0);
    expect(help.out()).toContain('--html <outdir>');
    expect(help.out()).toContain('--route <pattern>');
  });

  it('runs as a program (the bin file) with the right exit codes', async () => {
    await writeRecording(dir);
    const run = promisify(execFile);
    const cli = path.join(__dirname, '..', 'src', 'cli.ts');
    const args = ['-r', 'ts-node/register/transpile-only', cli, 'report'];
    const opts = { cwd: path.join(__dirname, '..'), env: { ...process.env, TS_NODE_PROJECT: 'tsconfig.json' } };

    const ok = await run(process.execPath, [...args, dir], opts);
    expect(ok.stdout).toContain('/ping       700.0 ms  70.0%  simulateCPULoad');

    await expect(run(process.execPath, [...args, path.join(dir, 'nope')], opts)).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('no such file or directory'),
    });
  });
});

describe('function names written by @pyroscope/nodejs (<file>:<name>:<line>)', () => {
  it.each([
    ['./src/app.js:handler:12', '/srv/src/app.js', 'handler'],
    ['node:internal/streams/readable:(anonymous:L#1:C#1):1', 'node:internal/streams/readable', '(anonymous:L#1:C#1)'],
    ['undici/lib/web/fetch/index.js::100', '/srv/node_modules/undici/lib/web/fetch/index.js', '(anonymous)'],
    [':(external):0', '', '(external)'],
    ['a:b:1', '/srv/other.js', 'a:b:1'],
    ['handler', '/srv/src/app.js', 'handler'],
    ['', '/srv/src/app.js', '(anonymous)'],
  ])('%s in %s reads as %s', (raw, file, expected) => {
    expect(functionName(raw, file)).toBe(expected);
  });
});
