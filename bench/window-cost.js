'use strict';
/**
 * Diagnosis (issue 19, not part of `npm run bench`): where an idle plugin's own CPU goes, step by
 * step. A Fastify app with the plugin continuous (defaults but the upload rate) and TypeScript's
 * compiler loaded, a short load, a warm-up, then over a measured stretch the main thread's CPU
 * (process.threadCpuUsage where Node has it, >= 23.9; else the process's, all threads) inside
 * each step of every window and check: the engine's cut (time.stop), the heap snapshot
 * (heap.profile), the frame rewrite, the heap window's encoding (SnapshotEncoder), the whole
 * collect(), the exporter's synchronous part, the threshold check and its CPU meter. Uploads go to
 * the bench's ingest stand-in in this process.
 *
 *   npm run build && node bench/window-cost.js [UPLOAD_RATE] [WARMUP_S] [MEASURE_S]   (default 15s 45 90)
 *
 * CPU time, not wall time: other work on a shared machine barely moves it (the per-step medians
 * moved by about 20 % between runs on 2026-12-03, a loaded 2-core machine).
 */
const D = '../dist';
const [uploadRate = '15s', warmupS = '45', measureS = '90'] = process.argv.slice(2);
const threadCpu = typeof process.threadCpuUsage === 'function';
const cpuMs = () => {
  const u = threadCpu ? process.threadCpuUsage() : process.cpuUsage();
  return (u.user + u.system) / 1000;
};

const spent = {};
/** Counts the CPU of every call of obj[name] (until its promise settles, for async ones). */
function measure(obj, name, label) {
  const original = obj[name];
  obj[name] = function measured(...args) {
    const before = cpuMs();
    const record = () => (spent[label] ??= []).push(cpuMs() - before);
    const result = original.apply(this, args);
    if (result && typeof result.then === 'function') return result.finally(record);
    record();
    return result;
  };
}

const pprof = require('@datadog/pprof');
measure(pprof.time, 'stop', 'engine cut (time.stop)');
measure(pprof.heap, 'profile', 'heap snapshot (heap.profile)');
measure(require(`${D}/profilers/frames`).FrameRewriter.prototype, 'rewrite', 'frame rewrite (each profile)');
const { SnapshotEncoder } = require(`${D}/profilers/snapshot-encoder`);
let heapEncoder;
const encode = SnapshotEncoder.prototype.encode;
SnapshotEncoder.prototype.encode = function remembered(...args) {
  heapEncoder = this;
  return encode.apply(this, args);
};
measure(SnapshotEncoder.prototype, 'encode', 'heap window encoding');
measure(require(`${D}/profilers`).EngineProfiler.prototype, 'collect', 'collect() in all');
measure(require(`${D}/exporters/pyroscope`).PyroscopeExporter.prototype, 'export', 'exporter.export (sync part)');
measure(require(`${D}/controller`).ProfilingController.prototype, 'check', 'threshold check');
measure(require(`${D}/cpu-usage`).CpuUsageMeter.prototype, 'measure', 'CPU meter reading');

const { IngestStandIn } = require('./ingest');

async function main() {
  require('typescript');
  const ingest = new IngestStandIn();
  const app = require('fastify')({ logger: false });
  app.get('/hello', async () => ({ hello: 'world' }));
  await app.register(require(D), { appName: 'window-cost', serverAddress: await ingest.listen(), cpuThreshold: 0, uploadRate });
  await app.listen({ host: '127.0.0.1', port: 0 });
  for (let i = 0; i < 500; i++) await app.inject('/hello');
  await new Promise((resolve) => setTimeout(resolve, Number(warmupS) * 1000));
  for (const label of Object.keys(spent)) spent[label] = [];
  const reusedBefore = heapEncoder ? heapEncoder.reused : 0;
  const [cpu0, proc0, wall0] = [cpuMs(), process.cpuUsage(), performance.now()];
  await new Promise((resolve) => setTimeout(resolve, Number(measureS) * 1000));
  const seconds = (performance.now() - wall0) / 1000;
  const proc = process.cpuUsage(proc0);
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  console.log(
    `${process.version}, uploadRate ${uploadRate}, ${seconds.toFixed(0)} s idle after ${warmupS} s: ` +
      `${threadCpu ? 'main thread' : 'process (no threadCpuUsage)'} ${((cpuMs() - cpu0) / seconds).toFixed(2)} ms/s, process ${((proc.user + proc.system) / 1000 / seconds).toFixed(2)} ms/s`,
  );
  for (const [label, xs] of Object.entries(spent)) {
    const total = xs.reduce((a, b) => a + b, 0);
    console.log(`  ${label.padEnd(30)} ${String(xs.length).padStart(3)} calls, median ${median(xs).toFixed(2)} ms, largest ${Math.max(...xs).toFixed(2)} ms, ${(total / seconds).toFixed(3)} ms/s`);
  }
  console.log(`  heap windows that reused the previous encoding: ${(heapEncoder ? heapEncoder.reused : 0) - reusedBefore}`);
  await app.close();
  await ingest.close();
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
