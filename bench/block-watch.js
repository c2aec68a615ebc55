'use strict';
/**
 * The longest synchronous block on the event loop over a window, two ways, from a 1 ms timer:
 * - wall: the longest gap between two ticks (`monitorEventLoopDelay`, 1 ms resolution), what
 *   users feel; on a busy machine it also counts time the OS kept the thread off the CPU and, in
 *   a profiler's stop, time spent waiting for its sampling thread;
 * - CPU: the CPU time spent between two ticks, which time spent waiting for a core does not
 *   inflate. Main thread only where Node can tell (`process.threadCpuUsage`, Node >= 23.9); before
 *   that, the process's CPU time (all threads) capped by the tick's wall gap: a bound from above
 *   that other threads working in parallel (GC, gzip on the thread pool) can only raise.
 * (Linux `/proc/self/task/PID/schedstat` is not used: it is only updated at scheduler ticks.)
 */
const { monitorEventLoopDelay, PerformanceObserver } = require('node:perf_hooks');

const threadCpu = typeof process.threadCpuUsage === 'function';
const cpuSource = threadCpu ? 'main thread' : 'process, capped by wall';

function cpuMs() {
  const u = threadCpu ? process.threadCpuUsage() : process.cpuUsage();
  return (u.user + u.system) / 1000;
}

class BlockWatch {
  constructor() {
    this.eld = monitorEventLoopDelay({ resolution: 1 });
    this.maxCpuMs = 0;
    let lastCpu = cpuMs();
    let lastWall = performance.now();
    this.timer = setInterval(() => {
      const cpu = cpuMs();
      const wall = performance.now();
      const spent = threadCpu ? cpu - lastCpu : Math.min(cpu - lastCpu, wall - lastWall);
      if (spent > this.maxCpuMs) this.maxCpuMs = spent;
      lastCpu = cpu;
      lastWall = wall;
    }, 1);
    this.eld.enable();
    // the longest garbage collection pause over the window (main thread), to tell a long block
    // that is a GC from one that is the profiler's own work
    this.maxGcMs = 0;
    this.gc = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) if (entry.duration > this.maxGcMs) this.maxGcMs = entry.duration;
    });
    this.gc.observe({ entryTypes: ['gc'] });
  }

  /** Stops watching: `{ wallMs, cpuMs, cpuSource }` of the longest block seen, and the longest GC pause. */
  stop() {
    clearInterval(this.timer);
    this.eld.disable();
    this.gc.disconnect();
    return { wallMs: this.eld.max / 1e6, cpuMs: this.maxCpuMs, cpuSource, maxGcMs: this.maxGcMs };
  }
}

/** Watches while `fn()` runs, plus a short margin on both sides so blocks at the edges are seen. */
async function longestBlockDuring(fn) {
  const settle = () => new Promise((resolve) => setTimeout(resolve, 20));
  const watch = new BlockWatch();
  await settle();
  const started = performance.now();
  await fn();
  const tookMs = performance.now() - started;
  await settle();
  return { tookMs, ...watch.stop() };
}

module.exports = { BlockWatch, longestBlockDuring };
