'use strict';
/**
 * Preloaded into a bench server by bench/own-cost-steps.js (`node -r ./bench/own-cost-probe.js
 * bench/server.js ...`): counts the CPU of each step of every window, check and upload the
 * server does (the plugin's and the engine floor's alike, they share dist/profilers), and writes
 * the totals to $OWN_COST_OUT when the process exits. CPU is the main thread's where Node has
 * process.threadCpuUsage (>= 23.9), else the process's (all threads: the sampling thread and
 * gzip's pool count in it then, so step figures on Node 20/22 carry some of theirs).
 */
const fs = require('node:fs');
const D = '../dist';
const threadCpu = typeof process.threadCpuUsage === 'function';
const cpuUs = () => {
  const u = threadCpu ? process.threadCpuUsage() : process.cpuUsage();
  return u.user + u.system;
};

/** label -> { calls, us } */
const spent = {};
function add(label, us) {
  if (!on) return;
  const s = (spent[label] ??= { calls: 0, us: 0 });
  s.calls++;
  s.us += us;
}

/** Counts the CPU of every call of obj[name]; an async one from its call until its promise settles. */
function measure(obj, name, label) {
  const original = obj && obj[name];
  if (typeof original !== 'function') return;
  obj[name] = function measured(...args) {
    const before = cpuUs();
    const result = original.apply(this, args);
    if (result && typeof result.then === 'function') return result.finally(() => add(label, cpuUs() - before));
    add(label, cpuUs() - before);
    return result;
  };
}

const counted = {};
function count(obj, name, label) {
  const original = obj && obj[name];
  if (typeof original !== 'function') return;
  obj[name] = function countedCall(...args) {
    if (on) counted[label] = (counted[label] ?? 0) + 1;
    return original.apply(this, args);
  };
}

const pprof = require('@datadog/pprof');
measure(pprof.time, 'stop', 'cut: time.stop (engine)');
measure(pprof.heap, 'profile', 'heap snapshot: heap.profile (engine)');
count(pprof.time, 'setContext', 'time.setContext calls');
measure(require('@datadog/pprof/out/src/profile-encoder'), 'encode', 'serialize + gzip: pprof encode');
const shared = require(`${D}/profilers/shared-engine`).SharedEngine.prototype;
measure(shared, 'takeTime', 'cut: takeTime in all');
measure(shared, 'threadPieces', 'worker pieces (async)');
measure(shared, 'mergeWindow', 'merge pieces');
measure(shared, 'views', 'projection into views');
measure(shared, 'heapSnapshot', 'heap snapshot in all'); // before the shared heap (shared-heap.ts)
try {
  const heap = require(`${D}/profilers/shared-heap`).SharedHeap.prototype;
  measure(heap, 'snapshot', 'heap snapshot in all');
  measure(heap, 'askThreads', 'worker heaps (async)');
  measure(heap, 'merge', 'merge heaps');
} catch {
  // a build before the shared heap: SharedEngine.heapSnapshot above
}
measure(require(`${D}/profilers/frames`).FrameRewriter.prototype, 'rewrite', 'frame rewrite (async)');
measure(require(`${D}/profilers/encode`), 'encodeProfile', 'CPU/wall encoding in all (async)');
measure(require(`${D}/profilers/snapshot-encoder`).SnapshotEncoder.prototype, 'encode', 'heap encoding in all (async)');
measure(require(`${D}/profilers`).EngineProfiler.prototype, 'collect', 'collect() call to settle (async)');
measure(require(`${D}/exporters/pyroscope`).PyroscopeExporter.prototype, 'export', 'exporter.export (async)');
measure(require(`${D}/controller`).ProfilingController.prototype, 'check', 'threshold check (async)');
measure(require(`${D}/cpu-usage`).CpuUsageMeter.prototype, 'measure', 'CPU meter reading');

/** Counting runs only between the runner's SIGUSR2 signals (on, off, on, off...); the totals are written at exit. */
let on = false;
let since;
const totals = { seconds: 0, cpuUs: 0, procUs: 0 };
const procUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
process.on('SIGUSR2', () => {
  const now = { wall: performance.now(), cpu: cpuUs(), proc: procUs() };
  if (on) {
    totals.seconds += (now.wall - since.wall) / 1000;
    totals.cpuUs += now.cpu - since.cpu;
    totals.procUs += now.proc - since.proc;
  }
  on = !on;
  since = now;
});
process.on('exit', () => {
  if (process.env.OWN_COST_OUT) fs.writeFileSync(process.env.OWN_COST_OUT, JSON.stringify({ node: process.version, threadCpu, ...totals, spent, counted }));
});
