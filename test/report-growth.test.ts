/**
 * `report --growth` on made-up heap snapshots with known stacks: ranking, rates, matching of
 * frames between snapshots, the time range, and the errors for inputs it cannot compare.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runReportCommand } from '../src/report/command';
import { loadGrowthReport } from '../src/report/read-profiles';
import { selfGrowth, totalGrowth } from '../src/report/growth';
import { buildProfile, CPU_TYPES, gzipProfile, MS, type ProfileSpec } from './fixtures/report-profiles';

const HEAP_TYPES = [['inuse_objects', 'count'], ['inuse_space', 'bytes']] as const;
const T0 = Date.UTC(2026, 10, 26, 7, 0, 0);
const MiB = 1024 * 1024;

/** A snapshot where `leak` holds `leakBytes` under handler > store > leak, `cache` a fixed 1 MiB. */
function snapshot(timeMs: number, leakBytes: number, extra: ProfileSpec['samples'] = []): ProfileSpec {
  return {
    sampleTypes: HEAP_TYPES,
    timeMs,
    samples: [
      { stack: ['handler@/app/a.js:1', 'store@/app/a.js:5', 'leak@/app/a.js:10'], values: [leakBytes / 64, leakBytes] },
      { stack: ['handler@/app/a.js:1', 'cache@/app/b.js:3'], values: [16, MiB] },
      ...extra,
    ],
  };
}

async function dirWith(files: Record<string, ProfileSpec | Buffer>): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'fcp-growth-'));
  for (const [name, spec] of Object.entries(files)) {
    await fsp.writeFile(path.join(dir, name), Buffer.isBuffer(spec) ? spec : gzipProfile(buildProfile(spec)));
  }
  return dir;
}

const name = (minute: number): string => `app.heap.2026-11-26T07-0${minute}-00.000Z.pb.gz`;

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runReportCommand(args, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
  return { code, out, err };
}

it('ranks the function whose in-use bytes grew between the earliest and the latest snapshot, with its rate', async () => {
  const dir = await dirWith({
    [name(0)]: snapshot(T0, 1 * MiB),
    [name(1)]: snapshot(T0 + 60_000, 2 * MiB),
    [name(2)]: snapshot(T0 + 120_000, 5 * MiB),
  });
  const growth = await loadGrowthReport([dir]);
  expect(growth.snapshots).toBe(3);
  expect(growth.earliest).toMatchObject({ source: path.join(dir, name(0)), timeMs: T0, bytes: 2 * MiB });
  expect(growth.latest).toMatchObject({ source: path.join(dir, name(2)), timeMs: T0 + 120_000, bytes: 6 * MiB });
  expect(growth.elapsedMs).toBe(120_000);
  expect(growth.functions.map((f) => [f.name, selfGrowth(f)])).toEqual([['leak', 4 * MiB]]);
  expect(growth.stacks).toEqual([{ frames: ['handler', 'store', 'leak'], before: MiB, after: 5 * MiB }]);
  expect(growth.skipped).toEqual([{ source: path.join(dir, name(1)), reason: expect.stringContaining('between the earliest and the latest') }]);
  // the tree is the latest heap, each frame with its inclusive growth
  const handler = growth.tree.c![0]!;
  expect([handler.n, handler.v, handler.d]).toEqual(['handler', 6 * MiB, 4 * MiB]);
  expect(handler.c!.map((c) => [c.n, c.d])).toEqual([['store', 4 * MiB], ['cache', 0]]);

  const { code, out } = await run([dir, '--growth']);
  expect(code).toBe(0);
  expect(out).toContain('between 2 of 3 heap snapshots, 120 s apart');
  expect(out).toContain('change:   +4.0 MiB (+2.0 MiB/min)');
  expect(out).toMatch(/\+4\.0 MiB\s+\+2\.0 MiB\/min\s+1\.0 MiB\s+5\.0 MiB\s+leak\s+\/app\/a\.js:10/);
  expect(out).toMatch(/\+4\.0 MiB {2}handler > store > leak/);
  expect(out).toContain('Heap samples carry no route');
  expect(out).not.toContain('cache');
});

it('books what V8 built-ins (frames without a file) allocated to the function that called them', async () => {
  const withBuiltin = (bytes: number): ProfileSpec => ({
    sampleTypes: HEAP_TYPES,
    timeMs: T0 + (bytes > MiB ? 60_000 : 0),
    samples: [
      { stack: ['handler@/app/a.js:1', 'remember@/app/a.js:7'], values: [1, bytes / 8] },
      { stack: ['handler@/app/a.js:1', 'remember@/app/a.js:7', 'padEnd'], values: [1, bytes] },
    ],
  });
  const dir = await dirWith({ [name(0)]: withBuiltin(MiB), [name(1)]: withBuiltin(3 * MiB) });
  const growth = await loadGrowthReport([dir]);
  expect(growth.functions.map((f) => [f.name, selfGrowth(f)])).toEqual([['remember', 2 * MiB + MiB / 4]]);
  // the stacks still show the built-in as the leaf
  expect(growth.stacks[0]!.frames).toEqual(['handler', 'remember', 'padEnd']);
});

it('--sort total ranks callers by the growth of the stacks they are on, recursion counted once', async () => {
  const recursive = (bytes: number): ProfileSpec['samples'] => [
    { stack: ['handler@/app/a.js:1', 'walk@/app/c.js:1', 'walk@/app/c.js:1', 'node@/app/c.js:9'], values: [1, bytes] },
  ];
  const dir = await dirWith({
    [name(0)]: snapshot(T0, MiB, recursive(MiB)),
    [name(1)]: snapshot(T0 + 60_000, MiB, recursive(3 * MiB)),
  });
  const growth = await loadGrowthReport([dir], { sortBy: 'total' });
  expect(growth.functions.map((f) => [f.name, totalGrowth(f)])).toEqual([['handler', 2 * MiB], ['node', 2 * MiB], ['walk', 2 * MiB]]);
});

it('matches frames by function and file:line, so a function moved to another line is a different stack', async () => {
  const moved: ProfileSpec = {
    sampleTypes: HEAP_TYPES,
    timeMs: T0 + 60_000,
    samples: [{ stack: ['handler@/app/a.js:1', 'store@/app/a.js:5', 'leak@/app/a.js:11'], values: [1, MiB] }],
  };
  const dir = await dirWith({ [name(0)]: snapshot(T0, MiB), [name(1)]: moved });
  const growth = await loadGrowthReport([dir]);
  expect(growth.functions.map((f) => [f.name, f.location, selfGrowth(f)])).toEqual([['leak', '/app/a.js:11', MiB]]);
  expect(growth.shrunk).toEqual({ functions: 2, bytes: 2 * MiB });
});

it('says when nothing grew', async () => {
  const dir = await dirWith({ [name(0)]: snapshot(T0, 2 * MiB), [name(1)]: snapshot(T0 + 60_000, MiB) });
  const { code, out } = await run([dir, '--growth']);
  expect(code).toBe(0);
  expect(out).toContain('change:   -1.0 MiB (-1.0 MiB/min)');
  expect(out.match(/none grew/g)).toHaveLength(2);
  expect(out).toContain('1 function holds less than before: 1.0 MiB in all');
});

it('compares the snapshots of a time range, and two files given by name', async () => {
  const dir = await dirWith({
    [name(0)]: snapshot(T0, 1 * MiB),
    [name(1)]: snapshot(T0 + 60_000, 2 * MiB),
    [name(2)]: snapshot(T0 + 120_000, 7 * MiB),
  });
  const ranged = await loadGrowthReport([dir], { fromMs: T0 + 30_000, toMs: T0 + 150_000 });
  expect([ranged.earliest.timeMs, ranged.latest.timeMs, selfGrowth(ranged.functions[0]!)]).toEqual([T0 + 60_000, T0 + 120_000, 5 * MiB]);
  expect(ranged.skipped.map((s) => s.reason)).toEqual(['taken outside --from/--to']);

  const pair = await loadGrowthReport([path.join(dir, name(0)), path.join(dir, name(1))]);
  expect(selfGrowth(pair.functions[0]!)).toBe(MiB);

  const cli = await run([dir, '--growth', '--from', '2026-11-26T07:00:30Z']);
  expect(cli.out).toContain('between 2 of 2 heap snapshots, 60 s apart');
});

it('refuses what it cannot compare, saying why', async () => {
  const one = await dirWith({ [name(0)]: snapshot(T0, MiB) });
  const single = await run([one, '--growth']);
  expect(single.code).toBe(1);
  expect(single.err).toContain('--growth compares two heap snapshots or more; found 1 heap snapshot');

  const cpu = await dirWith({
    'app.cpu.2026-11-26T07-00-00.000Z.pb.gz': { sampleTypes: CPU_TYPES, samples: [{ stack: ['f'], values: [1, MS] }] },
    [name(0)]: snapshot(T0, MiB),
    [name(1)]: Buffer.from([0x1f, 0x8b, 1, 2]),
  });
  const mixed = await run([cpu, '--growth']);
  expect(mixed.code).toBe(1);
  expect(mixed.err).toContain('found 1 heap snapshot');
  expect(mixed.err).toContain('not a complete gzip stream');
  expect(mixed.err).toContain('a cpu profile; the report reads the heap profiles');

  const untimed = await dirWith({ 'a.pb.gz': { ...snapshot(T0, MiB), timeMs: 0 }, 'b.pb.gz': { ...snapshot(T0, 2 * MiB), timeMs: 0 } });
  const noRange = await run([untimed, '--growth', '--from', '2026-11-26T07:00:00Z']);
  expect(noRange.err).toContain('says nowhere when it was taken');
  const noRate = await run([untimed, '--growth']);
  expect(noRate.code).toBe(0);
  expect(noRate.out).toContain('time between them unknown (no rate)');
  expect(noRate.out).toMatch(/\+1\.0 MiB\s+-\s+1\.0 MiB\s+2\.0 MiB\s+leak/);
});

it.each([
  [['--growth', '--route', '/x'], '--route does not apply to heap profiles'],
  [['--type', 'heap', '--span', '00f067aa0ba902b7'], '--span does not apply to heap profiles'],
  [['--growth', '--type', 'cpu'], '--growth compares heap profiles'],
  [['--from', '2026-11-26T07:00:00Z'], 'add --growth'],
  [['--growth', '--to', 'yesterday'], "--to must be an ISO 8601 time such as 2026-11-26T07:00:00Z, got 'yesterday'"],
  [['--growth', '--from', '2026-11-27', '--to', '2026-11-26'], '--from is later than --to'],
])('refuses %j on the command line', async (flags, message) => {
  const { code, err } = await run(['some-dir', ...flags]);
  expect(code).toBe(2);
  expect(err).toContain(message);
});

it('refuses --route on input that turns out to hold only heap profiles', async () => {
  const dir = await dirWith({ [name(0)]: snapshot(T0, MiB) });
  const { code, err } = await run([dir, '--route', '/x']);
  expect(code).toBe(1);
  expect(err).toContain('heap samples carry no route or span: drop --route');
});
