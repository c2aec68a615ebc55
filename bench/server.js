'use strict';
/**
 * One benchmark server: a Fastify app with `/hello` and greet's `/ping`, in one of the four
 * configurations, driven by bench/run.js over IPC. Started with `fork`, one process per
 * configuration, so profilers never share a process (and @pyroscope/nodejs's older copy of the
 * engine never meets ours). It uploads as app `bench-<config>`.
 *
 *   argv: CONFIG INGEST_URL GREET_ROUTES_JS UPLOAD_RATE
 *
 * The first message is sent unasked: `listening`, with the port and the startup block. Then
 * requests from the runner, each answered with one message:
 *   cpu         -> the process's CPU time so far (µs, all threads)
 *   load-start  -> event-loop delay is recorded from now (the runner's load on this server begins)
 *   load-end    -> ... until now
 *   stats       -> event-loop delay p99/max of each load slice, peak RSS, profiler stats
 *   watch {ms}  -> the longest block over the next `ms` (bench/block-watch.js)
 *   close       -> app.close() (profilers upload their last window), then the process exits
 */
const { monitorEventLoopDelay } = require('node:perf_hooks');
const path = require('node:path');
const Fastify = require('fastify');
const { BlockWatch, longestBlockDuring } = require('./block-watch');

const [config, ingestUrl, greetRoutesJs, uploadRate] = process.argv.slice(2);
const appName = `bench-${config}`;

/** What each configuration adds to the app before it becomes ready. */
const CONFIGURE = {
  async baseline() {},

  async continuous(app) {
    await app.register(require('../dist'), { appName, serverAddress: ingestUrl, cpuThreshold: 0, uploadRate });
  },

  // 1000 ‰ (one busy core) is the highest threshold the options allow and a saturating load can
  // reach it: checks are pushed past the run, so no session starts (the runner verifies it).
  async idle(app) {
    await app.register(require('../dist'), { appName, serverAddress: ingestUrl, cpuThreshold: 1000, checkInterval: '1h', uploadRate });
  },

  // The official SDK with its defaults (wall at 100 Hz + heap) except the flush interval, set to
  // our uploadRate so its uploads fall inside the run too; labels the way its README shows.
  async pyroscope(app) {
    const Pyroscope = require('@pyroscope/nodejs').default;
    Pyroscope.init({ appName, serverAddress: ingestUrl, flushIntervalMs: durationMs(uploadRate) });
    app.addHook('onRequest', (request, _reply, done) => {
      Pyroscope.setLabels({ route: request.routeOptions.url ?? '(not found)', method: request.method });
      done();
    });
    app.addHook('onReady', async () => Pyroscope.start());
    app.addHook('onClose', async () => Pyroscope.stop());
  },
};

/**
 * Diagnosis only (BENCH_EXTRA=baseline-again,disabled,large-graph,loaded,engine,idle-heap). `engine`: the engine as
 * the plugin runs it (CPU time at 100 Hz with contexts, heap sampling, a window collected every
 * uploadRate), without labels, hooks or uploads.
 */
const EXTRA = {
  // a second baseline (A/A): how far two identical servers' figures drift apart in one run
  async 'baseline-again'() {},
  // the plugin registered with enabled: false: the decorator only, no hook, no timer
  async disabled(app) {
    await app.register(require('../dist'), { appName, serverAddress: ingestUrl, enabled: false });
  },
  // Control: the baseline plus a large module graph unrelated to profiling (TypeScript's compiler,
  // 9 MB of JS that runs a lot at load). Loaded into a bare hello-world app on Node 24 it cost
  // +22-27 % per request; in this server it read 1.07-1.25 (bench/RESULTS.md, session 3): it shows
  // how much of an installed plugin's figure any sizeable module graph would cost.
  async 'large-graph'() {
    require('typescript');
  },
  // `idle` with the heap sampler running from ready (what heapThreshold/memoryThreshold do): 1000 ‰
  // of the heap limit is never reached, so no session starts; bench/heap-sampler-idle.js
  async 'idle-heap'(app) {
    await app.register(require('../dist'), { appName, serverAddress: ingestUrl, cpuThreshold: 1000, heapThreshold: 1000, checkInterval: '1h', uploadRate });
  },
  // the engine's package loaded (its native addon included), nothing started
  async loaded() {
    require('@datadog/pprof');
  },
  async engine(app) {
    const { time, heap } = require('@datadog/pprof');
    let timer;
    app.addHook('onReady', async () => {
      time.start({ intervalMicros: 10_000, durationMillis: durationMs(uploadRate), collectCpuTime: true, withContexts: true, lineNumbers: false });
      heap.start(524_288, 64);
      timer = setInterval(() => {
        time.stop(true);
        heap.profile();
      }, durationMs(uploadRate));
    });
    app.addHook('onClose', async () => {
      clearInterval(timer);
      time.stop(false);
      heap.stop();
    });
  },
};
Object.assign(CONFIGURE, EXTRA);

function durationMs(text) {
  const m = /^(\d+)(ms|s)$/.exec(text);
  if (!m) throw new Error(`uploadRate must look like "5s" or "500ms", received ${JSON.stringify(text)}`);
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}

function buildApp() {
  const app = Fastify({ logger: false });
  app.get('/hello', async () => ({ hello: 'world' }));
  // greet's own route, handler and ping logic (simulateCPULoad, 1,000,000 iterations)
  const { registerHandlers } = require(path.resolve(greetRoutesJs));
  registerHandlers(app, { config: { SimulateCPULoad: true } });
  return app;
}

function profilerStats(app) {
  if (!app.hasDecorator('profiler')) return undefined;
  const s = app.profiler.stats();
  return { state: s.state, sessions: s.sessions, labelMode: s.labelMode, uploadsOk: s.uploadsOk, uploadsFailed: s.uploadsFailed, dropped: s.dropped, samplesFolded: s.samplesFolded };
}

/**
 * Event-loop delay over each load slice: a new monitor per slice (a re-enabled one would count the
 * idle gap as one huge delay), at 10 ms resolution (a 1 ms timer would add its own cost).
 */
let sliceDelay;
const slices = [];

const HANDLERS = {
  cpu: () => {
    const u = process.cpuUsage();
    return { micros: u.user + u.system };
  },
  'load-start': () => {
    sliceDelay = monitorEventLoopDelay({ resolution: 10 });
    sliceDelay.enable();
    return {};
  },
  'load-end': () => {
    sliceDelay.disable();
    slices.push({ p99Ms: sliceDelay.percentile(99) / 1e6, maxMs: sliceDelay.max / 1e6 });
    return {};
  },
  stats: (app) => ({
    eldSlices: slices,
    maxRssMB: process.resourceUsage().maxRSS / 1024,
    profiler: profilerStats(app),
  }),
  watch: (_app, msg) => {
    const watch = new BlockWatch();
    return new Promise((resolve) => setTimeout(() => resolve(watch.stop()), msg.ms));
  },
  close: async (app) => {
    await app.close();
    return { profiler: profilerStats(app) };
  },
};

async function answer(app, msg) {
  try {
    const reply = await HANDLERS[msg.type](app, msg);
    process.send({ type: msg.type, ...reply }, () => {
      if (msg.type === 'close') process.exit(0);
    });
  } catch (error) {
    process.send({ type: 'error', error: String(error && error.stack) }, () => process.exit(1));
  }
}

async function main() {
  // BENCH_PRELOAD=typescript,... (diagnosis): every configuration, the baseline included, first
  // loads these modules, as a service with a large module graph of its own would have
  for (const name of (process.env.BENCH_PRELOAD || '').split(',').filter(Boolean)) require(name);
  if (!CONFIGURE[config]) throw new Error(`unknown configuration ${JSON.stringify(config)}; expected one of ${Object.keys(CONFIGURE).join(', ')}`);
  const app = buildApp();
  await CONFIGURE[config](app);
  // ready() is where the profilers start (ours in its onReady; @pyroscope/nodejs in ours above)
  const startup = await longestBlockDuring(() => app.ready());
  await app.listen({ host: '127.0.0.1', port: 0 });
  process.on('message', (msg) => void answer(app, msg));
  process.send({ type: 'listening', port: app.server.address().port, startup, node: process.version, profiler: profilerStats(app) });
}

main().catch((error) => {
  process.send({ type: 'error', error: String(error && error.stack) }, () => process.exit(1));
});
