'use strict';
/**
 * `node bench/source-map-cost.js` (after `npm run build`): what source maps cost with a 5 MB
 * bundle map (an esbuild minified bundle of 220 generated TypeScript modules, 13,200 functions; wall profiles: the CPU view needs the label hooks).
 *
 * For each configuration, in this process: the engine starts (start block), a workload calls
 * 2,000 of the bundle's functions for 1 s, then the window is collected (flush: time.stop,
 * frame rewriting, encoding) while the event loop is watched (bench/block-watch.js); five times, so
 * the first flush (the map is found, read and parsed) and later ones (median of 4) are both seen.
 * The machine is shared: run it a few times; the start block grows with the code loaded so far
 * (V8 lists every compiled function at start), whatever the configuration.
 *
 *   off        sourceMaps: false (paths cleaned only)
 *   worker     sourceMaps: true, as the plugin runs them (parsed on a worker thread)
 *   in-thread  the same SourceMaps on the event loop (what the worker avoids)
 *
 * Memory: the heap a parsed map holds, measured in-thread (gc before and after), next to the
 * cache's own estimate (stats().sourceMapCacheBytes).
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { longestBlockDuring } = require('./block-watch');

const ROOT = path.resolve(__dirname, '..');
const dist = (p) => require(path.join(ROOT, 'dist', p));
const { EngineProfiler, FrameRewriter } = dist('profilers');
const { PathCleaner } = dist('profilers/paths');
const { SourceMaps } = dist('profilers/source-maps');
const { SourceMapWorker } = dist('profilers/source-map-client');

const FILES = 220;
const FUNCTIONS_PER_FILE = 60;

function buildBundle(dir) {
  fs.mkdirSync(path.join(dir, 'src'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), '{"name":"source-map-bench"}');
  const index = [];
  for (let f = 0; f < FILES; f++) {
    let text = '';
    for (let i = 0; i < FUNCTIONS_PER_FILE; i++) {
      text += `export function computeTotal_${f}_${i}(values: number[], factor: number): number {\n  let total = 0;\n  for (const value of values) {\n    total += Math.sqrt(value * factor + ${i});\n  }\n  return total / (values.length || 1);\n}\n\n`;
    }
    fs.writeFileSync(path.join(dir, 'src', `m${f}.ts`), text);
    index.push(`export * as m${f} from './m${f}';`);
  }
  fs.writeFileSync(path.join(dir, 'src/index.ts'), index.join('\n'));
  require('esbuild').buildSync({
    entryPoints: [path.join(dir, 'src/index.ts')],
    bundle: true,
    minify: true,
    sourcemap: true,
    platform: 'node',
    format: 'cjs',
    outfile: path.join(dir, 'out/bundle.js'),
    logLevel: 'error',
  });
  return path.join(dir, 'out/bundle.js');
}

function workload(bundle, ms) {
  const fns = [];
  for (let f = 0; f < FILES && fns.length < 2000; f += 3) for (let i = 0; i < FUNCTIONS_PER_FILE && fns.length < 2000; i += 2) fns.push(bundle[`m${f}`][`computeTotal_${f}_${i}`]);
  const values = Array.from({ length: 200 }, (_, i) => i);
  const end = performance.now() + ms;
  let sink = 0;
  while (performance.now() < end) for (const fn of fns) sink += fn(values, 1.5);
  return sink;
}

const quietLogger = { info() {}, debug() {}, warn: (o, m) => console.log('warn:', m), error: (o, m) => console.log('error:', m) };

async function measure(name, bundle, symbolizer) {
  const frames = new FrameRewriter(new PathCleaner({ absolutePaths: false }), symbolizer);
  const profiler = new EngineProfiler({ sampleRate: 100, heapSamplingInterval: 524288, profileTypes: { cpu: false, wall: true, heap: false }, windowMs: 1000, frames });
  const start = await longestBlockDuring(async () => profiler.start());
  const flushes = [];
  for (let round = 0; round < 5; round++) {
    workload(bundle, 1000);
    let collected;
    const block = await longestBlockDuring(async () => {
      collected = await profiler.collect({ startMs: Date.now() - 1000, endMs: Date.now() });
    });
    flushes.push({ ...block, profiles: collected.profiles.length });
  }
  await profiler.stop({ startMs: Date.now(), endMs: Date.now() });
  const stats = symbolizer?.stats();
  await symbolizer?.close();
  return { name, start, flushes, stats };
}

/** Field by field median of block measurements. */
function median(blocks) {
  const mid = (key) => {
    const sorted = blocks.map((b) => b[key]).sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  };
  return { cpuMs: mid('cpuMs'), wallMs: mid('wallMs'), tookMs: mid('tookMs') };
}

async function inThreadHeap(script) {
  global.gc();
  const before = process.memoryUsage().heapUsed;
  const maps = new SourceMaps({ logger: quietLogger });
  await maps.prepare([script]);
  global.gc();
  const after = process.memoryUsage().heapUsed;
  const estimate = maps.stats().sourceMapCacheBytes;
  await maps.close();
  return { measuredMB: (after - before) / 2 ** 20, estimatedMB: estimate / 2 ** 20 };
}

async function main() {
  if (typeof global.gc !== 'function') {
    console.error('run with node --expose-gc bench/source-map-cost.js');
    process.exit(2);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcp-source-map-bench-'));
  try {
    const script = buildBundle(dir);
    const mapBytes = fs.statSync(`${script}.map`).size;
    console.log(`bundle ${(fs.statSync(script).size / 2 ** 20).toFixed(1)} MB, map ${(mapBytes / 2 ** 20).toFixed(1)} MB; Node ${process.version}`);
    const bundle = require(script);
    const results = [];
    results.push(await measure('off', bundle, undefined));
    results.push(await measure('worker', bundle, new SourceMapWorker({ logger: quietLogger })));
    results.push(await measure('in-thread', bundle, new SourceMaps({ logger: quietLogger })));
    const ms = (b) => `${b.cpuMs.toFixed(1)} (${b.wallMs.toFixed(1)})`;
    console.log('\n| sourceMaps | start block ms, CPU (wall) | first flush: block ms, CPU (wall) / took ms | later flushes (median of 4): block ms, CPU (wall) / took ms | maps cached, estimated MB |');
    console.log('| --- | --- | --- | --- | --- |');
    for (const r of results) {
      const [first, ...rest] = r.flushes;
      const steady = median(rest);
      const cache = r.stats ? `${r.stats.sourceMapsCached}, ${(r.stats.sourceMapCacheBytes / 2 ** 20).toFixed(1)}` : '-';
      console.log(`| ${r.name} | ${ms(r.start)} | ${ms(first)} / ${first.tookMs.toFixed(0)} | ${ms(steady)} / ${steady.tookMs.toFixed(0)} | ${cache} |`);
    }
    const heap = await inThreadHeap(script);
    console.log(`\nheap held by the parsed ${(mapBytes / 2 ** 20).toFixed(1)} MB map: ${heap.measuredMB.toFixed(1)} MB measured, ${heap.estimatedMB.toFixed(1)} MB estimated by the cache`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
