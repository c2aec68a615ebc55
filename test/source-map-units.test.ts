/**
 * The pieces of frame rewriting on their own: PathCleaner (what file names become) and
 * SourceMaps (finding, reading, bounding and refusing maps), on files written to a temp dir.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PathCleaner } from '../src/profilers/paths';
import { SourceMapWorker } from '../src/profilers/source-map-client';
import { SourceMaps, mappable, mayDeclareSourceMap } from '../src/profilers/source-maps';
import { FRAME_COLUMNS_ENGINE_OPTIONS } from '../src/profilers/frames';
import type { MinimalLogger } from '../src/types';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'fcp-source-map-units-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function write(rel: string, text: string): string {
  const file = path.join(dir, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
  return file;
}

function logger(): MinimalLogger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, info: () => undefined, debug: () => undefined, error: () => undefined, warn: (_o, msg) => warnings.push(msg ?? '') };
}

describe('PathCleaner', () => {
  test('relative to the root, node_modules/<package>/<path>, node: and non-paths unchanged', async () => {
    const root = path.join(dir, 'app');
    const cleaner = new PathCleaner({ root, absolutePaths: false });
    const files = [
      path.join(root, 'src/server.ts'),
      path.join(root, 'node_modules/fastify/lib/route.js'),
      path.join(dir, 'elsewhere/node_modules/@scope/pkg/node_modules/dep/index.js'),
      'node:internal/timers',
      'evalmachine.<anonymous>',
      'webpack://my-app/./src/routes/users.ts',
      '',
    ];
    await cleaner.prepare(files);
    expect(files.map((f) => cleaner.clean(f))).toEqual([
      'src/server.ts',
      'node_modules/fastify/lib/route.js',
      'node_modules/dep/index.js',
      'node:internal/timers',
      'evalmachine.<anonymous>',
      'src/routes/users.ts',
      '',
    ]);
  });

  test('a file outside the root is named by its package, or by its base name without one', async () => {
    write('lib/package.json', JSON.stringify({ name: 'shared-lib' }));
    const inPackage = write('lib/dist/util.js', '');
    const root = path.join(dir, 'app');
    const cleaner = new PathCleaner({ root, absolutePaths: false });
    const loose = path.join(path.parse(dir).root, 'fcp-no-such-dir', 'loose.js');
    await cleaner.prepare([inPackage, loose]);
    expect(cleaner.clean(inPackage)).toBe('shared-lib/dist/util.js');
    expect(cleaner.clean(loose)).toBe('loose.js');
  });

  test('absolutePaths keeps every name as it is', async () => {
    const cleaner = new PathCleaner({ absolutePaths: true });
    const file = path.join(dir, 'x.js');
    await cleaner.prepare([file]);
    expect(cleaner.clean(file)).toBe(file);
  });

  test('without a root, the root is the directory of the package.json nearest the entry script', async () => {
    const cleaner = new PathCleaner({ absolutePaths: false });
    const file = path.resolve(__dirname, '../src/plugin.ts');
    await cleaner.prepare([file]);
    // under Jest the entry script is Jest's own (inside node_modules): the current directory's package counts
    expect(cleaner.clean(file)).toBe('src/plugin.ts');
  });
});

describe('SourceMaps', () => {
  /** A script of `lines` lines whose map sends line i to line i + 10 of `source` (with content). */
  function mappedScript(name: string, lines: number, mapText?: (map: object) => string): string {
    const js = Array.from({ length: lines }, (_, i) => `function f${i}() {}`).join('\n');
    const map = { version: 3, sources: [`${name}.ts`], sourcesContent: ['// original'], names: [], mappings: ['AAUA', ...Array.from({ length: lines - 1 }, () => 'AACA')].join(';') };
    const annotation = mapText ? mapText(map) : `${name}.js.map`;
    if (!mapText) write(`${name}.js.map`, JSON.stringify(map));
    return write(`${name}.js`, `${js}\n//# sourceMappingURL=${annotation}\n`);
  }

  test('maps a line through an external map, and through an inline base64 or URL-encoded one', async () => {
    const external = mappedScript('external', 5);
    const base64 = mappedScript('base64', 5, (m) => `data:application/json;charset=utf-8;base64,${Buffer.from(JSON.stringify(m)).toString('base64')}`);
    const encoded = mappedScript('encoded', 5, (m) => `data:application/json,${encodeURIComponent(JSON.stringify(m))}`);
    const maps = new SourceMaps({ logger: logger() });
    await maps.prepare([external, base64, encoded]);
    for (const [script, source] of [
      [external, 'external.ts'],
      [base64, 'base64.ts'],
      [encoded, 'encoded.ts'],
    ]) {
      expect(maps.lookup(script, 3, 10, 'f2')).toEqual({ file: path.join(dir, source), line: 13, name: undefined });
    }
    expect(maps.stats()).toMatchObject({ sourceMapErrors: 0, sourceMapsCached: 3 });
  });

  test('a script without an annotation, with an http map, or under node_modules is no error', async () => {
    const plain = write('plain.js', 'function x() {}\n');
    const remote = write('remote.js', 'function x() {}\n//# sourceMappingURL=https://cdn.example.com/remote.js.map\n');
    const thirdParty = write('node_modules/pkg/index.js', 'function x() {}\n//# sourceMappingURL=missing.js.map\n');
    const maps = new SourceMaps({ logger: logger() });
    await maps.prepare([plain, remote, thirdParty, 'node:internal/timers', '']);
    expect(maps.lookup(plain, 1, 10, 'x')).toBeUndefined();
    expect(maps.stats()).toEqual({ sourceMapErrors: 0, sourceMapsCached: 0, sourceMapCacheBytes: 0 });
  });

  test('the cache stays within its bound: the least recently used map goes, and comes back when asked for', async () => {
    const scripts = ['a', 'b', 'c'].map((n) => mappedScript(n, 200));
    const log = logger();
    const probe = new SourceMaps({ logger: log });
    await probe.prepare([scripts[0]]);
    const oneMap = probe.stats().sourceMapCacheBytes;
    expect(oneMap).toBeGreaterThan(0);

    const maps = new SourceMaps({ logger: log, maxCacheBytes: oneMap * 2 });
    await maps.prepare(scripts.slice(0, 2));
    expect(maps.lookup(scripts[0], 1, 10, 'f0')).toBeDefined(); // a is now the most recent
    await maps.prepare([scripts[2]]);
    expect(maps.stats()).toMatchObject({ sourceMapsCached: 2, sourceMapCacheBytes: oneMap * 2 });
    expect(maps.lookup(scripts[1], 1, 10, 'f0')).toBeUndefined(); // b went
    expect(maps.lookup(scripts[0], 1, 10, 'f0')).toBeDefined();
    await maps.prepare([scripts[1]]);
    expect(maps.lookup(scripts[1], 1, 10, 'f0')?.line).toBe(11);
    expect(maps.stats().sourceMapCacheBytes).toBeLessThanOrEqual(oneMap * 2);
    expect(log.warnings).toEqual([]);
  });

  test('a map over maxMapBytes is not read; a map that is not a source map is refused; each is counted and logged once', async () => {
    const big = mappedScript('big', 50);
    const wrong = write('wrong.js', 'function x() {}\n//# sourceMappingURL=wrong.js.map\n');
    write('wrong.js.map', JSON.stringify({ version: 3, sections: 'nope' }));
    const log = logger();
    const maps = new SourceMaps({ logger: log, maxMapBytes: 100 });
    await maps.prepare([big, wrong]);
    await maps.prepare([big, wrong]); // remembered: not read (nor counted) again
    expect(maps.lookup(big, 1, 10, 'f0')).toBeUndefined();
    expect(maps.stats().sourceMapErrors).toBe(2);
    expect(log.warnings).toHaveLength(2);
    expect(log.warnings.join('\n')).toMatch(/big\.js stay as compiled: its source map is 0\.0 MB, more than/);
    expect(log.warnings.join('\n')).toMatch(/wrong\.js stay as compiled: its source map is not a valid source map/);
  });
});

describe('SourceMapWorker (the compiled worker from dist/: npm run build first)', () => {
  const workerFile = path.resolve(__dirname, '../dist/profilers/source-map-worker.js');

  function bigMappedScript(name: string, mapMB: number): string {
    const lines = 2000;
    const js = Array.from({ length: lines }, (_, i) => `function f${i}() {}`).join('\n');
    const mappings = ['AAAA', ...Array.from({ length: lines - 1 }, () => 'AACA')].join(';');
    const content = 'x'.repeat(mapMB * 1024 * 1024);
    write(`${name}.js.map`, JSON.stringify({ version: 3, sources: [`${name}.ts`], sourcesContent: [content], names: [], mappings }));
    return write(`${name}.js`, `${js}\n//# sourceMappingURL=${name}.js.map\n`);
  }

  test('answers from the worker thread, and remembers the answers', async () => {
    const script = bigMappedScript('small', 0);
    const maps = new SourceMapWorker({ logger: logger(), workerFile });
    try {
      const query = { script, line: 3, column: 10, name: 'f2' };
      expect(await maps.lookupAll([query, { ...query, script: 'node:internal/x' }])).toEqual([{ file: path.join(dir, 'small.ts'), line: 3 }, undefined]);
      expect(maps.stats()).toMatchObject({ sourceMapErrors: 0, sourceMapsCached: 1 });
      expect(await maps.lookupAll([query])).toEqual([{ file: path.join(dir, 'small.ts'), line: 3 }]);
    } finally {
      await maps.close();
    }
  });

  test('a worker that runs out of memory on a map: frames stay compiled, counted, logged, and that script is not asked about again', async () => {
    const script = bigMappedScript('heavy', 12);
    const log = logger();
    const maps = new SourceMapWorker({ logger: log, workerFile, workerHeapMb: 8 });
    try {
      const query = { script, line: 3, column: 10, name: 'f2' };
      expect(await maps.lookupAll([query])).toEqual([undefined]);
      expect(maps.stats().sourceMapErrors).toBe(1);
      expect(log.warnings.join('\n')).toMatch(/source maps are off for a minute/);
      expect(await maps.lookupAll([query])).toEqual([undefined]);
      expect(maps.stats().sourceMapErrors).toBe(1);
    } finally {
      await maps.close();
    }
  });
});

describe('which frames can have a map (cost: columns, the worker thread)', () => {
  test('mappable: a script outside node_modules and outside this plugin', () => {
    expect(mappable(path.join(dir, 'app/dist/server.js'))).toBe(true);
    expect(mappable(path.join(dir, 'app/node_modules/fastify/lib/route.js'))).toBe(false);
    expect(mappable('node:internal/timers')).toBe(false);
    // the plugin's own files (src/ here under ts-jest, dist/ when built): an installed plugin is
    // under node_modules, so run from its repository its frames are not mapped either
    expect(mappable(path.resolve(__dirname, '../src/plugin.ts'))).toBe(false);
    expect(mappable(path.resolve(__dirname, '../src/profilers/frames.ts'))).toBe(false);
    expect(mappable(path.resolve(__dirname, 'fixtures/anything.js'))).toBe(true);
  });

  test('the engine keeps the column only of frames that can have a map', () => {
    const { mappingInfo } = FRAME_COLUMNS_ENGINE_OPTIONS.sourceMapper as unknown as { mappingInfo: (l: object) => { missingMapFile?: boolean } };
    const frame = (file: string) => ({ file, line: 3, column: 12, name: 'f' });
    expect(mappingInfo(frame(path.join(dir, 'app/dist/server.js'))).missingMapFile).toBe(true);
    expect(mappingInfo(frame(path.join(dir, 'app/node_modules/fastify/lib/route.js'))).missingMapFile).toBeUndefined();
    expect(mappingInfo(frame('node:internal/timers')).missingMapFile).toBeUndefined();
    expect(mappingInfo(frame('')).missingMapFile).toBeUndefined();
  });

  test('mayDeclareSourceMap reads the last line: an annotation, none, a long last line, a missing file', async () => {
    expect(await mayDeclareSourceMap(write('mapped.js', 'function f() {}\n//# sourceMappingURL=mapped.js.map\n'))).toBe(true);
    expect(await mayDeclareSourceMap(write('plain.js', 'function f() {}\n// no map here\n'))).toBe(false);
    expect(await mayDeclareSourceMap(write('early.js', '//# sourceMappingURL=early.js.map\nfunction f() {}\n'))).toBe(false);
    expect(await mayDeclareSourceMap(write('minified.js', `var a=${'1+'.repeat(20_000)}1;`))).toBe(true);
    expect(await mayDeclareSourceMap(path.join(dir, 'gone.js'))).toBe(false);
  });

  test('SourceMapWorker starts no worker while no script of a window declares a map', async () => {
    // a worker file that does not exist: starting a worker fails, is counted and logged
    const log = logger();
    const maps = new SourceMapWorker({ logger: log, workerFile: path.join(dir, 'no-such-worker.js') });
    try {
      const plain = write('plain.js', 'function f() {}\nfunction g() {}\n');
      expect(await maps.lookupAll([{ script: plain, line: 2, column: 10, name: 'g' }])).toEqual([undefined]);
      expect(maps.stats().sourceMapErrors).toBe(0);
      expect(log.warnings).toEqual([]);
      // a script with an annotation does start one (here: fails to)
      const mapped = write('mapped.js', 'function f() {}\n//# sourceMappingURL=mapped.js.map\n');
      expect(await maps.lookupAll([{ script: mapped, line: 1, column: 10, name: 'f' }])).toEqual([undefined]);
      expect(maps.stats().sourceMapErrors).toBe(1);
      expect(log.warnings.join('\n')).toMatch(/source maps are off for a minute/);
    } finally {
      await maps.close();
    }
  });
});
