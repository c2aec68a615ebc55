/**
 * Issue 22: frames of scripts run by TypeScript runners (src/profilers/runtime-maps.ts).
 *
 * A real app under real tsx (its CommonJS and ES module loaders) and ts-node, with the plugin
 * from dist/ as installed (npm run build first: maps are read on the worker thread), the CPU
 * profile decoded: burnInTypeScript's frames must read its .ts file and line, and its own name
 * (tsx's esbuild renames it burnInTypeScript2). ts-node without --enable-source-maps keeps its
 * maps to itself: the frames stay at the compiled line, and that is counted and said once.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { Profile } from 'pprof-format';
import { runChild, TS_NODE_ARGV } from './helpers/child-report';

interface RunnerReport {
  profiles: string[];
  warnings: string[];
  sourceMapErrors: number;
  sourceMapsCached: number;
}

const FIXTURES = path.join(__dirname, 'fixtures', 'runners');
const TS_NODE_TYPECHECK = ['-r', require.resolve('ts-node/register')];

/** The 1-based line of `function burnInTypeScript(` in a fixture. */
function burnLine(file: string): number {
  return fs.readFileSync(path.join(FIXTURES, file), 'utf8').split('\n').findIndex((l) => l.includes('function burnInTypeScript(')) + 1;
}

/** Every (file, line, name) the profiles give the burn function (by name: compiled or original). */
function burnFrames(report: RunnerReport): { file: string; line: number; name: string }[] {
  const frames = new Map<string, { file: string; line: number; name: string }>();
  for (const b64 of report.profiles) {
    const profile = Profile.decode(zlib.gunzipSync(Buffer.from(b64, 'base64')));
    const strings = profile.stringTable.strings;
    const burns = new Map(profile.function.filter((f) => strings[Number(f.name)].startsWith('burnInTypeScript')).map((f) => [String(f.id), f]));
    for (const location of profile.location) {
      for (const line of location.line) {
        const fn = burns.get(String(line.functionId));
        if (fn === undefined) continue;
        const frame = { file: strings[Number(fn.filename)], line: Number(line.line), name: strings[Number(fn.name)] };
        frames.set(JSON.stringify(frame), frame);
      }
    }
  }
  return [...frames.values()];
}

function run(file: string, execArgv: string[]): Promise<RunnerReport> {
  return runChild<RunnerReport>(path.join(FIXTURES, file), [], { execArgv });
}

const MAPPED: [string, string, string[]][] = [
  ['tsx, CommonJS loader (node --require tsx/cjs)', 'app.ts', ['--require', 'tsx/cjs']],
  ['tsx, ES module loader (node --import tsx), a CommonJS .ts', 'app.ts', ['--import', 'tsx']],
  ['tsx, ES module loader (node --import tsx), an .mts module', 'app-esm.mts', ['--import', 'tsx']],
  ['ts-node with --enable-source-maps', 'app.ts', ['--enable-source-maps', ...TS_NODE_ARGV]],
];

describe(`TypeScript runners (Node ${process.version})`, () => {
  test.each(MAPPED)('%s: the burn function reads its .ts file, line and name', async (_name, file, execArgv) => {
    const report = await run(file, execArgv);
    expect(burnFrames(report)).toEqual([{ file: `test/fixtures/runners/${file}`, line: burnLine(file), name: 'burnInTypeScript' }]);
    expect(report.sourceMapErrors).toBe(0);
    expect(report.sourceMapsCached).toBeGreaterThanOrEqual(1);
    expect(report.warnings).toEqual([]);
  }, 60_000);

  test.each([
    ['ts-node --transpile-only', TS_NODE_ARGV],
    ['ts-node (type checking)', TS_NODE_TYPECHECK],
  ])('%s without --enable-source-maps: compiled lines, counted, said once with the fix', async (_name, execArgv) => {
    const report = await run('app.ts', execArgv);
    const frames = burnFrames(report);
    expect(frames.length).toBeGreaterThan(0);
    // the compiled line (ts-node's output drops the interface and type lines above the function)
    expect(frames.every((f) => f.file === 'test/fixtures/runners/app.ts' && f.line !== burnLine('app.ts'))).toBe(true);
    // app.ts and harness.ts: each counted, the warning once (whichever came first)
    expect(report.sourceMapErrors).toBe(2);
    expect(report.warnings).toHaveLength(1);
    expect(report.warnings[0]).toMatch(
      /^continuous profiling: frames of (app|harness)\.ts stay at ts-node's compiled lines: ts-node keeps its source maps to itself; start Node with --enable-source-maps \(e\.g\. NODE_OPTIONS=--enable-source-maps\) so Node keeps them and profiles read the \.ts lines$/,
    );
  }, 60_000);
});
