'use strict';
/**
 * Diagnosis (issue 19, not part of `npm run bench`): what a heap window costs the main thread when
 * the live heap is large and unchanged, fresh (rewrite + encode + gzip) against SnapshotEncoder's
 * reuse (comparison + gzip). The heap sampler runs while TypeScript parses part of its own
 * compiler into an AST that stays live (about 100 MB at SRC=3000000).
 *
 *   npm run build && node bench/heap-window-cost.js     (INTERVAL=bytes, default 524288; SRC=chars)
 */
const fs = require('node:fs');
const { heap } = require('@datadog/pprof');
const { FrameRewriter } = require('../dist/profilers/frames');
const { PathCleaner } = require('../dist/profilers/paths');
const { SnapshotEncoder } = require('../dist/profilers/snapshot-encoder');
const { mergeIdenticalSamples } = require('../dist/profilers/transform');

const threadCpu = typeof process.threadCpuUsage === 'function';
const cpuMs = () => {
  const u = threadCpu ? process.threadCpuUsage() : process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  heap.start(Number(process.env.INTERVAL || 524_288), 64);
  const ts = require('typescript');
  const source = fs.readFileSync(require.resolve('typescript/lib/typescript.js'), 'utf8').slice(0, Number(process.env.SRC || 3e6));
  const live = ts.createSourceFile('live.ts', source, ts.ScriptTarget.Latest, true);
  const frames = () => new FrameRewriter(new PathCleaner({ absolutePaths: false }), undefined);
  const spent = { snapshot: [], fresh: [], reused: [] };
  const reusing = new SnapshotEncoder(frames());
  let profile;
  for (let i = 0; i < 7; i++) {
    let at = cpuMs();
    profile = heap.profile();
    mergeIdenticalSamples(profile);
    spent.snapshot.push(cpuMs() - at);
    at = cpuMs();
    await new SnapshotEncoder(frames()).encode(profile, Date.now(), 15_000); // nothing kept: rewrite + encode
    spent.fresh.push(cpuMs() - at);
    profile = heap.profile();
    mergeIdenticalSamples(profile);
    at = cpuMs();
    await reusing.encode(profile, Date.now(), 15_000); // the first call encodes, the others compare and reuse
    if (i > 0) spent.reused.push(cpuMs() - at);
  }
  console.log(
    `${process.version}: ${profile.sample.length} heap samples, ${profile.location.length} locations, AST of ${live.statements.length} statements live; ` +
      `${threadCpu ? 'main thread' : 'process'} CPU per window, median of 7: heap.profile ${median(spent.snapshot).toFixed(2)} ms, ` +
      `fresh rewrite + encode ${median(spent.fresh).toFixed(2)} ms, reused (comparison + gzip) ${median(spent.reused).toFixed(2)} ms; ${reusing.reused} of 6 windows reused`,
  );
  heap.stop();
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
