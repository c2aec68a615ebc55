/**
 * Source-mapped frames and clean file paths, end to end: a TypeScript service compiled as users
 * ship it (tsc external maps, tsc inline maps, an esbuild minified bundle) runs in a child process
 * under real HTTP load with the plugin from dist/ (npm run build first) writing to the file
 * exporter; the written profiles are decoded and their frames read.
 */
import { readFileSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Profile } from 'pprof-format';
import { IngestStandIn } from './helpers/ingest-stand-in';
import { SourceMapFixture, framesOf, lineOf, type FixtureRun, type Frame } from './helpers/source-map-fixture';

const REPO = path.resolve(__dirname, '..');
const HOT = 'burnCpuInTypeScript';

function hotFrames(run: FixtureRun): Frame[] {
  return run.profiles.flatMap((p) => framesOf(p.profile)).filter((f) => f.name === HOT);
}

function cpuProfiles(run: FixtureRun): FixtureRun['profiles'] {
  return run.profiles.filter((p) => p.file.includes('.cpu.'));
}

/** Every string of every profile's string table that names a path of this machine. */
function machinePaths(profiles: readonly Profile[], fixtureDir: string): string[] {
  const forbidden = new Set([REPO, realpathSync(REPO), fixtureDir, realpathSync(fixtureDir), os.tmpdir(), realpathSync(os.tmpdir()), os.homedir()]);
  const found = new Set<string>();
  for (const profile of profiles) {
    for (const s of profile.stringTable.strings) for (const p of forbidden) if (s.includes(p)) found.add(s);
  }
  return [...found];
}

describe.each(['external', 'inline', 'bundle'] as const)('a service compiled as %s, profiles uploaded and written to files', (build) => {
  let app: SourceMapFixture;
  let ingest: IngestStandIn;
  let run: FixtureRun;
  let uploaded: Profile[];
  beforeAll(async () => {
    ingest = await IngestStandIn.start();
    app = SourceMapFixture.create(build);
    run = await app.run({ serverAddress: ingest.url });
    uploaded = ingest.uploads.map((u) => u.profile);
  });
  afterAll(async () => {
    app?.remove();
    await ingest?.close();
  });

  test('its hot function is reported at its .ts file and TypeScript line, with its original name', () => {
    const compiled = readFileSync(app.entry, 'utf8');
    // the bundle is minified: the name can only come from the map
    if (build === 'bundle') expect(compiled).not.toContain(HOT);
    else expect(lineOf(compiled, `function ${HOT}(`)).not.toBe(app.hotLine);
    expect(cpuProfiles(run).length).toBeGreaterThan(0);
    const hot = hotFrames(run);
    expect(hot.length).toBeGreaterThan(0);
    for (const frame of hot) expect(frame).toEqual({ name: HOT, file: 'src/server.ts', line: app.hotLine });
    // the same frames reach Pyroscope
    expect(uploaded.length).toBeGreaterThan(0);
    const hotUploaded = uploaded.flatMap(framesOf).filter((f) => f.name === HOT);
    expect(hotUploaded.length).toBeGreaterThan(0);
    for (const frame of hotUploaded) expect(frame).toEqual({ name: HOT, file: 'src/server.ts', line: app.hotLine });
    const warnings = run.stdout.split('\n').filter((l) => l.includes('"level":40'));
    expect({ sourceMapErrors: run.stats.sourceMapErrors, warnings }).toEqual({ sourceMapErrors: 0, warnings: [] });
    expect(run.stats.sourceMapsCached).toBeGreaterThanOrEqual(1);
  });

  test('no profile carries an absolute path of this machine; third-party frames read node_modules/<package>/<path>', () => {
    expect(machinePaths([...run.profiles.map((p) => p.profile), ...uploaded], app.dir)).toEqual([]);
    const files = new Set([...run.profiles.map((p) => p.profile), ...uploaded].flatMap(framesOf).map((f) => f.file));
    expect([...files].some((f) => f.startsWith('node_modules/fastify/'))).toBe(true);
    for (const f of files) expect(path.isAbsolute(f)).toBe(false);
  });
});

describe('options', () => {
  let app: SourceMapFixture;
  beforeAll(() => {
    app = SourceMapFixture.create('external');
  });
  afterAll(() => app?.remove());

  test('sourceMaps: false keeps the compiled file and line; absolutePaths: true keeps the path of this machine', async () => {
    const run = await app.run({ sourceMaps: false, absolutePaths: true });
    const hot = hotFrames(run);
    expect(hot.length).toBeGreaterThan(0);
    for (const frame of hot) {
      expect(frame.file).toBe(path.join(app.dir, 'dist/server.js'));
      expect(frame.line).not.toBe(app.hotLine);
    }
    expect(run.stats.sourceMapsCached).toBe(0);
  });

  test('root: file names are relative to the directory given', async () => {
    const run = await app.run({ root: path.join(app.dir, 'src') });
    const hot = hotFrames(run);
    expect(hot.length).toBeGreaterThan(0);
    for (const frame of hot) expect(frame).toEqual({ name: HOT, file: 'server.ts', line: app.hotLine });
  });
});

describe('maps that cannot be used', () => {
  const hotScript = (name: string, map: string): string =>
    `"use strict";\nexports.hot = function ${name}() {\n  let x = 0;\n  const end = Date.now() + 1;\n  while (Date.now() < end) x += Math.sqrt(x + 1);\n  return x;\n};\n//# sourceMappingURL=${map}\n`;
  /** each generated line i maps to line i of source 0 */
  const lineByLine = (lines: number): string => ['AAAA', ...Array.from({ length: lines - 1 }, () => 'AACA')].join(';');

  let app: SourceMapFixture;
  let run: FixtureRun;
  beforeAll(async () => {
    app = SourceMapFixture.create('external');
    const scripts = [
      app.write('lib/malformed.js', hotScript('hotMalformed', 'malformed.js.map')),
      app.write('lib/missing-sources.js', hotScript('hotMissingSources', 'missing-sources.js.map')),
      app.write('lib/huge.js', hotScript('hotHuge', 'huge.js.map')),
      app.write('lib/no-map-file.js', hotScript('hotNoMapFile', 'absent.js.map')),
    ];
    app.write('lib/malformed.js.map', '{"version":3,"sources":["malformed.ts"],"mappings":"AAAA;AACA');
    app.write('lib/missing-sources.js.map', JSON.stringify({ version: 3, sources: ['../nowhere/missing.ts'], names: [], mappings: lineByLine(8) }));
    // 50 MB: past the 30 MB read at most
    const filler = 'x'.repeat(50 * 1024 * 1024);
    app.write('lib/huge.js.map', `{"version":3,"sources":["huge.ts"],"names":[],"mappings":"${lineByLine(8)}","sourcesContent":["${filler}"]}`);
    run = await app.run({}, { extraScripts: scripts });
  });
  afterAll(() => app?.remove());

  test('profiling goes on; their frames stay as compiled; each is counted and logged once', () => {
    const frames = run.profiles.flatMap((p) => framesOf(p.profile));
    for (const [name, file] of [
      ['hotMalformed', 'lib/malformed.js'],
      ['hotMissingSources', 'lib/missing-sources.js'],
      ['hotHuge', 'lib/huge.js'],
      ['hotNoMapFile', 'lib/no-map-file.js'],
    ]) {
      const found = frames.filter((f) => f.name === name);
      expect(found.length).toBeGreaterThan(0);
      for (const f of found) expect(f).toEqual({ name, file, line: 2 });
    }
    // the service's own map still works
    expect(hotFrames(run).every((f) => f.file === 'src/server.ts' && f.line === app.hotLine)).toBe(true);
    expect(run.stats.sourceMapErrors).toBe(4);
    const warnings = run.stdout.split('\n').filter((l) => l.includes('stay as compiled'));
    for (const script of ['malformed.js', 'missing-sources.js', 'huge.js', 'no-map-file.js']) {
      expect(warnings.filter((w) => w.includes(`"script":"${script}"`))).toHaveLength(1);
    }
    expect(warnings.find((w) => w.includes('"script":"malformed.js"'))).toMatch(/not valid JSON/);
    expect(warnings.find((w) => w.includes('"script":"missing-sources.js"'))).toMatch(/missing\.ts/);
    expect(warnings.find((w) => w.includes('"script":"huge.js"'))).toMatch(/50\.0 MB/);
    expect(machinePaths(run.profiles.map((p) => p.profile), app.dir)).toEqual([]);
  });
});
