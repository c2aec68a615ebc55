'use strict';
/**
 * One benchmark server: a Fastify app with `/hello`, greet's `/ping` and the realistic
 * `/orders` route, in one configuration, driven by bench/run.js over IPC. One process per
 * configuration, so profilers never share a process (and @pyroscope/nodejs's older copy of the
 * engine never meets ours). It uploads as app `bench-<config>`.
 *
 *   argv: CONFIG INGEST_URL GREET_ROUTES_JS UPLOAD_RATE
 *   env:  BENCH_SERVER_PRELOAD=typescript,... modules loaded first (a sizeable module graph)
 *
 * The first message is sent unasked: `listening`, with the port and the startup block. Then
 * requests from the runner, each answered with one message:
 *   cpu         -> the process's CPU time so far (µs, all threads)
 *   load-start  -> event-loop delay is recorded from now (the runner's load on this server begins)
 *   load-end    -> ... until now
 *   stats       -> event-loop delay p99/max of each load slice, peak RSS, profiler stats
 *   watch {ms}  -> the longest block over the next `ms` (bench/block-watch.js)
 *   session-start / session-stop -> app.profiler.start() / stop() (the `starting` configuration)
 *   close       -> app.close() (profilers upload their last window), then the process exits
 */
const { monitorEventLoopDelay } = require('node:perf_hooks');
const path = require('node:path');
const { BlockWatch, longestBlockDuring } = require('./block-watch');

const [config, ingestUrl, greetRoutesJs, uploadRate] = process.argv.slice(2);
const appName = `bench-${config}`;

/**
 * The engine as the plugin starts it, minus everything that is the plugin's own work: the same
 * EngineProfiler (dist/profilers: TimeProfiler + HeapProfiler), the plugin's defaults for sample
 * rate, profile types and heap interval (dist/options DEFAULTS, overridable like the plugin's
 * `sampleRate`), `withContexts: true` and `useCPED` exactly when the plugin would use it, a window
 * collected (captured, projected, encoded, gzipped) every uploadRate. What it leaves out: label
 * propagation (no context is ever set or entered: the labeler below only asks for contexts),
 * Fastify hooks, the controller and its CPU meter, uploads. The plugin's own cost is its figure
 * minus this one.
 */
/** The engine floor's own account (it uploads nothing): windows collected, CPU samples in the last. */
let engineFloorStats;

async function engineFloor(app, sampleRate, propagator) {
  const { EngineProfiler } = require('../dist/profilers');
  const { DEFAULTS } = require('../dist/options');
  const { asyncContextFrameActive } = require('../dist/labels/propagation');
  const useCPED = asyncContextFrameActive();
  const contextsOnly = {
    timeProfilerOptions: () => ({ withContexts: true, useCPED }),
    // the diagnosis floors that enter contexts (engine-labels) follow the engine's sessions
    activate: () => propagator?.enable(),
    deactivate: () => propagator?.disable(),
    generateLabels: () => ({}),
  };
  const windowMs = durationMs(uploadRate);
  const profiler = new EngineProfiler({
    sampleRate: sampleRate ?? DEFAULTS.sampleRate,
    heapSamplingInterval: DEFAULTS.heapSamplingInterval,
    profileTypes: DEFAULTS.profileTypes,
    windowMs,
    labeler: contextsOnly,
  });
  let timer;
  let windowStart = Date.now();
  engineFloorStats = { useCPED, sampleRate: sampleRate ?? DEFAULTS.sampleRate, windows: 0, lastWindowSamples: 0, collectFailures: 0 };
  const count = (collected) => {
    engineFloorStats.windows++;
    engineFloorStats.lastWindowSamples = collected.profiles.filter((p) => p.kind === 'cpu').reduce((n, p) => n + p.sampleCount, 0);
  };
  const nextWindow = () => {
    const window = { startMs: windowStart, endMs: Date.now() };
    windowStart = window.endMs;
    return window;
  };
  app.addHook('onReady', async () => {
    profiler.start();
    windowStart = Date.now();
    timer = setInterval(() => {
      profiler.collect(nextWindow()).then(count, (error) => {
        engineFloorStats.collectFailures++;
        console.error(`engine floor: collect failed: ${error}`);
      });
    }, windowMs);
    timer.unref();
  });
  app.addHook('onClose', async () => {
    clearInterval(timer);
    await profiler.stop(nextWindow());
  });
}

/** What each configuration adds to the app before it becomes ready. */
const CONFIGURE = {
  async baseline() {},

  // a second baseline (A/A): how far two identical servers' figures drift apart in one run
  async 'baseline-again'() {},

  async engine(app) {
    await engineFloor(app);
  },

  // BENCH_PLUGIN_OPTIONS='{"sourceMaps":false}' (diagnosis, bench/block-causes.js): options added to the plugin's
  async continuous(app) {
    const extra = process.env.BENCH_PLUGIN_OPTIONS ? JSON.parse(process.env.BENCH_PLUGIN_OPTIONS) : {};
    await app.register(require('../dist'), { appName, serverAddress: ingestUrl, cpuThreshold: 0, uploadRate, ...extra });
  },

  // 1000 ‰ (one busy core) is the highest threshold the options allow and a saturating load can
  // reach it: checks are pushed past the run, so no session starts (the runner verifies it).
  async idle(app) {
    await app.register(require('../dist'), { appName, serverAddress: ingestUrl, cpuThreshold: 1000, checkInterval: '1h', uploadRate });
  },

  // `idle`, in the light-load phases: the runner starts a session halfway through each slice
  // (session-start) and stops it after (session-stop), the latency a threshold session's start adds
  async starting(app) {
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
 * Where the plugin's own cost goes (`npm run bench:diagnosis`): the engine floor plus one
 * piece of the plugin's request path at a time.
 */
async function engineFloorWithHook(app, { enterLabels }) {
  let propagator;
  if (enterLabels) {
    const { asyncContextFrameActive, createPropagator } = require('../dist/labels/propagation');
    propagator = createPropagator(asyncContextFrameActive() ? 'cped' : 'async-hooks');
  }
  await engineFloor(app, undefined, propagator);
  // one frozen label set for every request, entered as the plugin enters a route's cached set
  const labels = Object.freeze({ route: '/any', method: 'GET' });
  app.addHook('onRequest', enterLabels ? (_request, _reply, done) => propagator.run(labels, done, true) : (_request, _reply, done) => done());
}

/**
 * OpenTelemetry in the process (span profiles: `npm run bench:diagnosis`): the SDK's
 * NodeTracerProvider, every trace sampled, a batch span processor into an exporter that drops
 * the spans, instrumentation-http. Set up before Fastify is loaded (instrumentation-http patches
 * `http` as it is required).
 */
function setUpOpenTelemetry() {
  const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
  const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
  const { registerInstrumentations } = require('@opentelemetry/instrumentation');
  const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http');
  const dropAll = { export: (_spans, done) => done({ code: 0 }), shutdown: async () => undefined };
  const provider = new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(dropAll)] });
  provider.register();
  registerInstrumentations({ instrumentations: [new HttpInstrumentation()] });
  return provider;
}
const tracerProvider = config.startsWith('otel-') ? setUpOpenTelemetry() : undefined;

function continuousWithSpans(app, spanProfiles) {
  return app.register(require('../dist'), { appName, serverAddress: ingestUrl, cpuThreshold: 0, uploadRate, spanProfiles });
}

/** Diagnosis only (BENCH_EXTRA=disabled,large-graph,loaded,idle-heap,engine-hook,engine-labels,otel-*). */
const EXTRA = {
  // the engine floor + an empty onRequest hook: what a Fastify hook costs a request
  async 'engine-hook'(app) {
    await engineFloorWithHook(app, { enterLabels: false });
  },
  // ... + the hook entering one shared label set the way the plugin does (CPED: the engine's own
  // store with the set's kept holder; Node 20/22: the async hook and its store): the least that
  // exact labels can cost, without the plugin's route lookup, span check and controller
  async 'engine-labels'(app) {
    await engineFloorWithHook(app, { enterLabels: true });
  },
  // ... + everything the plugin's registration loads (the package, @opentelemetry/api), loaded and
  // unused: tells a bigger module graph (which alone makes a trivial route dearer) from work
  async 'engine-labels-graph'(app) {
    await engineFloorWithHook(app, { enterLabels: true });
    require('../dist');
    require('@opentelemetry/api');
  },
  // the plugin, continuous, with OpenTelemetry tracing every request: span profiles off ...
  async 'otel-off'(app) {
    await continuousWithSpans(app, false);
  },
  // ... and on (sampled trace: a context of its own per request)
  async 'otel-spans'(app) {
    await continuousWithSpans(app, true);
  },
  // ... off, plus a fresh engine context per request (CPED only: what a context of its own per
  // request costs there; on Node 20/22 the same as otel-off): tells the engine's part of span
  // profiles from the plugin's
  async 'otel-holder'(app) {
    await continuousWithSpans(app, false);
    const { asyncContextFrameActive } = require('../dist/labels/propagation');
    if (!asyncContextFrameActive()) return; // async hooks: nothing per request to tell apart
    const { time } = require('@datadog/pprof');
    app.addHook('onRequest', (request, _reply, done) => {
      if (time.isStarted()) time.runWithContext({ route: '/any', method: request.method }, done);
      else done();
    });
  },
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
};
Object.assign(CONFIGURE, EXTRA);

/**
 * Sample-rate variants, e.g. `continuous-19hz` (the plugin, continuous, `sampleRate: 19`) and
 * `engine-19hz` (the engine floor at 19 Hz).
 */
function configure(name) {
  if (CONFIGURE[name]) return CONFIGURE[name];
  const m = /^(continuous|engine)-(\d+)hz$/.exec(name);
  if (!m) return undefined;
  const sampleRate = Number(m[2]);
  if (m[1] === 'engine') return (app) => engineFloor(app, sampleRate);
  return (app) => app.register(require('../dist'), { appName, serverAddress: ingestUrl, cpuThreshold: 0, uploadRate, sampleRate });
}

function durationMs(text) {
  const m = /^(\d+)(ms|s)$/.exec(text);
  if (!m) throw new Error(`uploadRate must look like "5s" or "500ms", received ${JSON.stringify(text)}`);
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}

/**
 * The realistic route: what a small JSON API endpoint does per request. A querystring validated
 * by its schema (Ajv), one await on real I/O (a 512-byte read through an open FileHandle: a round
 * trip to libuv's thread pool, as a database or cache client makes), 50 objects built and
 * serialized through a response schema (fast-json-stringify). Its servers also load a sizeable
 * module graph first (BENCH_SERVER_PRELOAD=typescript, set by the runner), as real services have.
 */
const ORDER = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    sku: { type: 'string' },
    name: { type: 'string' },
    status: { type: 'string' },
    quantity: { type: 'integer' },
    unitPrice: { type: 'number' },
    currency: { type: 'string' },
    createdAt: { type: 'string' },
    tags: { type: 'array', items: { type: 'string' } },
  },
  required: ['id', 'sku', 'name', 'status', 'quantity', 'unitPrice', 'currency', 'createdAt', 'tags'],
};
const ORDERS_SCHEMA = {
  querystring: {
    type: 'object',
    properties: {
      limit: { type: 'integer', minimum: 1, maximum: 100, default: 50 },
      offset: { type: 'integer', minimum: 0, default: 0 },
      status: { type: 'string', enum: ['open', 'shipped', 'cancelled'], default: 'open' },
    },
    additionalProperties: false,
  },
  response: {
    200: {
      type: 'object',
      properties: { total: { type: 'integer' }, offset: { type: 'integer' }, items: { type: 'array', items: ORDER } },
    },
  },
};
const REALISTIC_URL = '/orders?limit=50&offset=100&status=open';

async function registerOrders(app) {
  const { open } = require('node:fs/promises');
  const file = await open(__filename, 'r');
  const buffer = Buffer.alloc(512);
  app.addHook('onClose', async () => file.close());
  app.get('/orders', { schema: ORDERS_SCHEMA }, async (request) => {
    const { limit, offset, status } = request.query;
    const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
    const items = new Array(limit);
    for (let i = 0; i < limit; i++) {
      const id = offset + i;
      items[i] = {
        id,
        sku: `SKU-${(id * 7919) % 100_000}`,
        name: `Item ${id} of the catalogue`,
        status,
        quantity: (id * 31 + bytesRead) % 17,
        unitPrice: Math.round(((id * 13) % 10_000) + 99) / 100,
        currency: 'EUR',
        createdAt: new Date(1_700_000_000_000 + id * 60_000).toISOString(),
        tags: id % 3 === 0 ? ['priority', 'gift'] : ['standard'],
      };
    }
    return { total: 10_000, offset, items };
  });
}

async function buildApp() {
  const app = require('fastify')({ logger: false }); // loaded here: after OpenTelemetry's set-up
  app.get('/hello', async () => ({ hello: 'world' }));
  await registerOrders(app);
  // greet's own route, handler and ping logic (simulateCPULoad, 1,000,000 iterations)
  const { registerHandlers } = require(path.resolve(greetRoutesJs));
  registerHandlers(app, { config: { SimulateCPULoad: true } });
  return app;
}

function profilerStats(app) {
  if (!app.hasDecorator('profiler')) return undefined;
  const s = app.profiler.stats();
  return { state: s.state, sessions: s.sessions, labelMode: s.labelMode, uploadsOk: s.uploadsOk, uploadsFailed: s.uploadsFailed, dropped: s.dropped, samplesFolded: s.samplesFolded, spanProfiles: s.spanProfiles };
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
    engineFloor: engineFloorStats,
  }),
  'session-start': (app) => ({ started: app.profiler.start({ reason: 'bench: light-load phase' }) }),
  'session-stop': async (app) => {
    await app.profiler.stop();
    return {};
  },
  watch: (_app, msg) => {
    const watch = new BlockWatch();
    return new Promise((resolve) => setTimeout(() => resolve(watch.stop()), msg.ms));
  },
  close: async (app) => {
    await app.close();
    await tracerProvider?.shutdown();
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
  const preload = [process.env.BENCH_PRELOAD, process.env.BENCH_SERVER_PRELOAD].filter(Boolean).join(',');
  for (const name of new Set(preload.split(',').filter(Boolean))) require(name);
  const setup = configure(config);
  if (!setup) throw new Error(`unknown configuration ${JSON.stringify(config)}; expected one of ${Object.keys(CONFIGURE).join(', ')}, continuous-NNhz, engine-NNhz`);
  const app = await buildApp();
  await setup(app);
  // ready() is where the profilers start (ours in its onReady; @pyroscope/nodejs in ours above)
  const startup = await longestBlockDuring(() => app.ready());
  await app.listen({ host: '127.0.0.1', port: 0 });
  process.on('message', (msg) => void answer(app, msg));
  // the realistic route answers as it should (schema defaults, 50 items) before anything is measured
  const probe = await app.inject(REALISTIC_URL);
  const body = probe.json();
  if (probe.statusCode !== 200 || body.items.length !== 50) throw new Error(`${REALISTIC_URL} answered ${probe.statusCode} with ${body.items && body.items.length} items`);
  process.send({ type: 'listening', port: app.server.address().port, startup, node: process.version, profiler: profilerStats(app) });
}

main().catch((error) => {
  process.send({ type: 'error', error: String(error && error.stack) }, () => process.exit(1));
});
