'use strict';
/**
 * `npm run bench` (issues 6 and 15): what continuous profiling costs a Fastify service, with an
 * interval on every ratio, on the Node that runs this script (children use the same executable).
 *
 * 1. Per route (/orders, the realistic route; /hello; greet's /ping): every configuration is its
 *    own server process (bench/server.js), pinned to core 1 while this runner and its load
 *    generator hold core 0 (see placement()). Servers are started and warmed up, then per load
 *    shape (saturating: 50 connections, closed loop; paced: open loop at the rate
 *    that keeps the baseline's core about half busy) rounds of slices: each server in turn, order
 *    turning each round, gets the same number of requests; its CPU time over its own slice /
 *    requests served = CPU per request. No load (`idle`) and light loads (`light2`, `light10`:
 *    2 % and 10 % of a core on /orders): every server at once over window-long slices
 *    (windowedRound), CPU in ms per second and every request's latency (p50 / p99 / p99.9 / max).
 * 2. Flush probe: per configuration, the longest block while idle across one upload (median of 3).
 * 3. Label accuracy: test/fixtures/accuracy-workload.js, ours vs @pyroscope/nodejs's setLabels.
 * 4. bench/report.js: per phase, each configuration's ratio to the baseline with a 95 % bootstrap
 *    interval over the paired rounds (bench/stats.js), the plugin's own cost over the engine
 *    floor, the sample-rate rows, the targets; RESULTS.md's section for this Node major is
 *    rewritten and bench/results/nodeNN.json kept (the README table is built from those).
 *
 * Environment:
 *   BENCH_QUICK=1        smoke test: 2 rounds of short slices (about 1-2 minutes); figures not
 *                        meaningful. Quick runs and runs narrowed by BENCH_PHASES, BENCH_SKIP or
 *                        BENCH_PRELOAD write neither RESULTS.md nor bench/results/ unless BENCH_WRITE=1
 *   BENCH_ROUNDS=N       rounds of every phase (default: see PHASES)
 *   BENCH_SLICE_S=S      seconds of load per slice (default 2)
 *   BENCH_UPLOAD_RATE=T  uploadRate of every profiler (default 15s, the plugin's default)
 *   BENCH_PHASES=LIST    e.g. orders:saturating,orders:paced,orders:idle,orders:light10,hello:saturating,ping:saturating
 *                        (idle: no load; lightNN: paced at NN % of a core; both in window-long slices,
 *                        every server at once, reported as CPU ms per second and request latency)
 *   BENCH_WINDOWED_TURNS=1  the no-load / light-load phases give each server its slice in turn
 *                        (order turning) instead of all at once: slower, but each server's latency
 *                        is its own (at once, the four share core 1 and each one's p99 carries the
 *                        others' blocks); such runs say so in their section
 *   BENCH_RATES=LIST     sample-rate rows on /orders, Hz (default 19,49,99; empty: none)
 *   BENCH_RATE_SHAPES=L  the /orders load shapes that measure them (default paced; paced,saturating)
 *   BENCH_PACED_SHARE=X  paced load as a share of one core of the baseline (default 0.5)
 *   BENCH_PIN=0          no core pinning (default: on when taskset exists and there are >= 2 cores)
 *   BENCH_JSON=FILE      raw figures as JSON (default bench/results/nodeNN.json unless quick)
 *   BENCH_TAG=NAME       a variant of this Node's run kept apart: section nodeNN-NAME, file
 *                        nodeNN-NAME.json (e.g. BENCH_TAG=cped with Node 22 and
 *                        NODE_OPTIONS=--experimental-async-context-frame)
 *   BENCH_EXTRA=LIST     diagnosis configurations (disabled, large-graph, loaded, idle-heap,
 *                        engine-hook, engine-labels, engine-labels-graph, otel-off, otel-spans,
 *                        otel-holder; see server.js)
 *   BENCH_CONFIGS=LIST   the always-present configurations to keep (default all six; baseline required)
 *
 * `npm run bench:diagnosis`: where the plugin's own cost goes (engine floor + an empty hook, +
 * entering a label set) and what span profiles cost (OpenTelemetry SDK in both servers, spans
 * off / on / off + a fresh engine context per request), on /hello and /orders, saturating;
 * section nodeNN-diagnosis of RESULTS.md.
 *   BENCH_SKIP=probe,accuracy   leave out the flush probe and/or the label-accuracy run
 */
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { compileGreetHandlers } = require('./greet');
const { IngestStandIn } = require('./ingest');
const report = require('./report');
const stats = require('./stats');

const QUICK = process.env.BENCH_QUICK === '1';
const numberFromEnv = (name, fallback) => (process.env[name] !== undefined && process.env[name] !== '' ? Number(process.env[name]) : fallback);

const ROUTES = {
  orders: { key: 'orders', url: '/orders?limit=50&offset=100&status=open', label: '/orders (realistic)', preload: 'typescript', warmup: 2000, bounds: [500, 50_000] },
  hello: { key: 'hello', url: '/hello', label: '/hello', warmup: 3000, bounds: [1000, 100_000] },
  // the VM slows sustained CPU work (a /ping call from 1.2 to 5 ms): bounded so a slice stays short
  ping: { key: 'ping', url: '/ping', label: '/ping (greet)', warmup: 300, bounds: [100, 1500] },
};

/**
 * Default phases and their rounds: most rounds where the questions are (the realistic route,
 * the comparison with @pyroscope/nodejs), about 10-12 minutes in all on this machine.
 */
const DEFAULT_PHASES = 'orders:saturating:12,orders:paced:10,orders:idle:4,orders:light2:3,orders:light10:4,hello:saturating:8,hello:paced:4,ping:saturating:4';

function parsePhases() {
  const text = process.env.BENCH_PHASES || DEFAULT_PHASES;
  return text.split(',').filter(Boolean).map((item) => {
    const [route, shape, rounds] = item.split(':');
    if (!ROUTES[route] || !(['saturating', 'paced'].includes(shape) || report.isWindowedShape(shape))) {
      throw new Error(`BENCH_PHASES: ${JSON.stringify(item)} is not ROUTE:SHAPE[:ROUNDS] with ROUTE one of ${Object.keys(ROUTES).join(', ')} and SHAPE saturating, paced, idle or lightNN (NN % of a core)`);
    }
    const fallback = Number(rounds) || 8;
    return { route, shape, rounds: QUICK ? 2 : numberFromEnv('BENCH_ROUNDS', fallback) };
  });
}

const PLAN = {
  quick: QUICK,
  phases: parsePhases(),
  connections: 50,
  sliceSeconds: numberFromEnv('BENCH_SLICE_S', QUICK ? 0.4 : 2),
  uploadRate: process.env.BENCH_UPLOAD_RATE || (QUICK ? '2s' : '15s'),
  probeUploadRate: '2s',
  rates: (process.env.BENCH_RATES ?? '19,49,99').split(',').filter(Boolean).map(Number),
  // Sample-rate rows under the paced load only by default: the sampler's cost is per second, so
  // it weighs most per request at a service's usual load, and three more servers in the
  // saturating phase would take another ~80 s of a run meant to fit in about 10 minutes
  rateShapes: (process.env.BENCH_RATE_SHAPES || 'paced').split(',').filter(Boolean),
  pacedShare: numberFromEnv('BENCH_PACED_SHARE', 0.5),
  warmupScale: QUICK ? 0.2 : 1,
  probeRequests: QUICK ? 100 : 600,
  accuracyMs: QUICK ? 1000 : 3000,
  // a random pause before each slice, so slices do not lock onto the upload timers' phase
  maxGapMs: 250,
  windowedTurns: process.env.BENCH_WINDOWED_TURNS === '1',
};
const MESSAGE_TIMEOUT_MS = 120_000;
const RESULTS_FILE = path.join(__dirname, 'RESULTS.md');
const EXTRA = (process.env.BENCH_EXTRA || '').split(',').filter(Boolean);
const BASE_CONFIGS = (() => {
  const all = report.CONFIGS.map((c) => c.key);
  const wanted = (process.env.BENCH_CONFIGS || '').split(',').filter(Boolean);
  const unknown = wanted.filter((k) => !all.includes(k));
  if (unknown.length > 0 || (wanted.length > 0 && !wanted.includes('baseline'))) {
    throw new Error(`BENCH_CONFIGS: ${JSON.stringify(process.env.BENCH_CONFIGS)} must list baseline and only these: ${all.join(', ')}`);
  }
  return wanted.length > 0 ? wanted : all;
})();
const SKIP = (process.env.BENCH_SKIP || '').split(',').filter(Boolean);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const appName = (config) => `bench-${config}`;

/**
 * Configurations measured in a phase: the six always, the sample-rate rows on /orders, extras.
 * No-load and light-load phases (report.isWindowedShape): the baseline, the engine floor, the
 * plugin continuous and, with no load, installed idle; under light load `starting` (installed
 * idle, a session started halfway through every slice) instead; and the BENCH_EXTRA diagnosis ones.
 */
function configsFor(route, shape) {
  if (report.isWindowedShape(shape)) {
    const wanted = ['baseline', 'engine', 'continuous', shape === 'idle' ? 'idle' : 'starting'];
    return [...wanted.filter((c) => c === 'starting' || BASE_CONFIGS.includes(c)), ...EXTRA];
  }
  const rates = route === 'orders' && PLAN.rateShapes.includes(shape) ? PLAN.rates.map((hz) => `continuous-${hz}hz`) : [];
  return [...BASE_CONFIGS, ...rates, ...EXTRA];
}

// ------------------------------------------------------------------------------------------------
// Core placement

/**
 * On 2 cores: this runner (load generators, ingest stand-in) on core 0, every server on core 1.
 * The load generator then never takes CPU from the server it measures (unpinned, the load generator and
 * the server fought for the same core in some slices and not in others, which is noise), and the
 * servers' own threads (V8's sampling thread, GC helpers, libuv's pool) share the server's core
 * as they would in a one-CPU container. Only one server is under load at a time, so the idle
 * ones sharing core 1 cost nothing but their timers. BENCH_PIN=0 turns it off.
 */
function placement() {
  const cores = os.cpus().length;
  const wanted = process.env.BENCH_PIN !== '0' && cores >= 2;
  let taskset = false;
  if (wanted) {
    try {
      execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
      taskset = true;
    } catch {
      taskset = false;
    }
  }
  return taskset
    ? { pinned: true, runnerCore: 0, serverCore: 1, text: 'runner + load generator on core 0, servers on core 1 (taskset)' }
    : { pinned: false, text: wanted ? 'not pinned (taskset failed)' : `not pinned (${cores < 2 ? 'one core' : 'BENCH_PIN=0'})` };
}

// ------------------------------------------------------------------------------------------------
// Server processes

/** The next message from `child`; rejects on an `error` message, on exit, or after a timeout. */
function nextMessage(child, what) {
  return new Promise((resolve, reject) => {
    const onMessage = (msg) => (msg.type === 'error' ? done(new Error(`server failed during ${what}: ${msg.error}`)) : done(null, msg));
    const onExit = (code) => done(new Error(`server exited (code ${code}) while the runner waited for ${what}`));
    const timer = setTimeout(() => done(new Error(`server did not answer ${what} within ${MESSAGE_TIMEOUT_MS} ms`)), MESSAGE_TIMEOUT_MS);
    function done(error, msg) {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(msg);
    }
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

/** One configuration's server (bench/server.js) and the runner's side of its IPC protocol. */
class ServerProcess {
  static async start(config, ctx, { uploadRate = PLAN.uploadRate, preload } = {}) {
    const args = [path.join(__dirname, 'server.js'), config, ctx.ingestUrl, ctx.greetRoutesJs, uploadRate];
    const env = { ...process.env, BENCH_SERVER_PRELOAD: preload || '' };
    const stdio = ['ignore', 'inherit', 'inherit', 'ipc'];
    const child = ctx.placement.pinned
      ? spawn('taskset', ['-c', String(ctx.placement.serverCore), process.execPath, ...args], { stdio, env })
      : spawn(process.execPath, args, { stdio, env });
    try {
      return new ServerProcess(config, child, await nextMessage(child, 'listening'));
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    }
  }

  constructor(config, child, listening) {
    this.config = config;
    this.child = child;
    this.port = listening.port;
    this.startup = listening.startup;
    this.startedAt = Date.now();
    this.exited = new Promise((resolve) => child.once('exit', resolve));
  }

  ask(type, extra = {}) {
    const answer = nextMessage(this.child, type);
    this.child.send({ type, ...extra });
    return answer;
  }

  async cpuMicros() {
    return (await this.ask('cpu')).micros;
  }

  /** app.close() in the server (last uploads), then wait for the process to end. */
  async close() {
    const closed = await this.ask('close');
    await this.exited;
    this.lifetimeMs = Date.now() - this.startedAt;
    return closed;
  }

  kill() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

// ------------------------------------------------------------------------------------------------
// Load

/**
 * Saturating: `amount` requests over 50 keep-alive connections, each sending its next request
 * as soon as the previous one is answered (closed loop). Not autocannon: from one core its
 * client served /hello at about 9,000 requests per second with the server's core 43 % busy
 * (smoke run, shared machine), i.e. the load generator, not the server, set the pace; the
 * client below costs a fraction of that per request.
 */
function saturate(port, url, amount) {
  return drive(port, url, { amount, rate: Infinity, connections: PLAN.connections });
}

/** Paced: `amount` requests at `rate` per second (see drive()); `record`: keep every request's latency. */
function paced(port, url, rate, amount, record = false) {
  return drive(port, url, { amount, rate, connections: MAX_PACED_CONNECTIONS, record });
}

const STATUS_LINE = Buffer.from('HTTP/1.1 ');
const MAX_PACED_CONNECTIONS = 64;

/**
 * The load generator: `amount` requests to `url`, issued at `rate` per second (open loop: a
 * request is issued when it is due, whether earlier ones were answered or not; `Infinity`: all
 * at once, which makes it closed loop over `connections`), one request in flight per keep-alive
 * connection (a due request waits for a free connection when all are busy). autocannon's
 * `overallRate` is not used for pacing: it sends each connection's quota at the start of every
 * second, a burst that saturates the server for part of each second. A request's latency runs from
 * when it was due (not when a connection was free for it: no coordinated omission) to its status
 * line. Node's own HTTP client is
 * not used either: at the ~20,000 requests per second that half a core of `/hello` takes, it
 * could not keep the pace from one core. This client writes one prepared request and counts
 * responses by their status lines (a native byte search; our servers' bodies never contain one).
 */
function drive(port, url, { amount, rate, connections, record = false }) {
  const request = Buffer.from(`GET ${url} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const sockets = [];
    const free = [];
    let issued = 0;
    // due times of requests waiting for a free connection (latency counts from when a request was due)
    const waiting = [];
    let answered = 0;
    let failed = 0;
    let latencySum = 0;
    const latencies = record ? new Float64Array(amount) : undefined;
    let settled = false;
    const timer = setTimeout(() => settle(new Error(`load on ${url}: ${answered + failed} of ${amount} responses after ${MESSAGE_TIMEOUT_MS} ms`)), MESSAGE_TIMEOUT_MS);
    const settle = (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      if (error) reject(error);
      else if (failed > amount / 100) reject(new Error(`load on ${url}: ${failed} of ${amount} requests failed (not 2xx)`));
      else resolve({ served: answered, wallMs: performance.now() - started, latencyMeanMs: latencySum / Math.max(1, answered), latencies: latencies && latencies.subarray(0, answered) });
    };
    const send = (socket, dueAt = performance.now()) => {
      socket.sentAt = dueAt;
      socket.write(request);
    };
    const open = () => {
      const socket = net.connect(port, '127.0.0.1');
      socket.setNoDelay(true);
      let tail = Buffer.alloc(0);
      socket.on('data', (chunk) => {
        const data = tail.length > 0 ? Buffer.concat([tail, chunk]) : chunk;
        for (let at = data.indexOf(STATUS_LINE); at !== -1; at = data.indexOf(STATUS_LINE, at + STATUS_LINE.length)) {
          // '2' of a 2xx status (a status digit cut off by the chunk's end counts as answered)
          if (data[at + STATUS_LINE.length] === undefined || data[at + STATUS_LINE.length] === 0x32) {
            const latency = performance.now() - socket.sentAt;
            if (latencies) latencies[answered] = latency;
            answered++;
            latencySum += latency;
          } else failed++;
          if (waiting.length > 0) send(socket, waiting.shift());
          else free.push(socket);
        }
        // a status line split between two chunks is found in the next one
        tail = data.subarray(Math.max(0, data.length - STATUS_LINE.length + 1));
        if (answered + failed >= amount) settle();
      });
      socket.on('error', (error) => settle(new Error(`load on ${url}: ${error.message}`)));
      // a server that closes a connection (or dies) mid-slice must not leave the runner waiting
      socket.on('close', () => settle(new Error(`load on ${url}: the server closed a connection after ${answered + failed} of ${amount} responses`)));
      sockets.push(socket);
      return socket;
    };
    const tick = () => {
      if (settled) return;
      const due = rate === Infinity ? amount : Math.min(amount, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
      for (; issued < due; issued++) {
        if (free.length > 0) send(free.pop());
        else if (sockets.length < connections) send(open());
        else waiting.push(performance.now());
      }
      if (issued < amount) setTimeout(tick, 1);
    };
    tick();
  });
}

// ------------------------------------------------------------------------------------------------
// The phases

/**
 * On the baseline: saturating throughput and CPU per request, from which a slice's size is set.
 * Saturating slices: throughput x sliceSeconds requests (bounded). Paced: the rate at which the
 * baseline's core would be `pacedShare` busy, for sliceSeconds.
 */
async function calibrate(server, route) {
  const before = await server.cpuMicros();
  const load = await saturate(server.port, route.url, Math.round(route.warmup * PLAN.warmupScale) || 100);
  const cpuPerRequest = ((await server.cpuMicros()) - before) / load.served;
  const perSecond = load.served / (load.wallMs / 1000);
  const [low, high] = route.bounds;
  const saturating = round50(Math.min(high, Math.max(low, perSecond * PLAN.sliceSeconds)));
  return { cpuPerRequest, perSecond, saturating };
}

const round50 = (x) => Math.max(50, Math.round(x / 50) * 50);

/**
 * The paced rate: `pacedShare` of a core / the baseline's CPU per request under saturation
 * (from the saturating rounds when they ran, else the calibration), then corrected once by a
 * paced trial slice on the baseline: a request costs more CPU at a moderate rate than under
 * saturation (less batching per event-loop turn), so the rate comes down (to half at most). It
 * goes up by 20 % at most: a trial reading "not busy enough" is more likely a core shared with
 * other work than requests costing less than under saturation.
 */
async function pacedRate(server, route, { cpuPerRequest }, share = PLAN.pacedShare) {
  const [, high] = route.bounds;
  const first = (share * 1e6) / cpuPerRequest;
  const trialBefore = await server.cpuMicros();
  const trial = await paced(server.port, route.url, first, round50(first * PLAN.sliceSeconds));
  const trialBusy = ((await server.cpuMicros()) - trialBefore) / 1000 / trial.wallMs;
  const rate = Math.max(10, Math.round(first * Math.min(1.2, Math.max(0.5, share / trialBusy))));
  return { rate, amount: round50(Math.min(high, rate * PLAN.sliceSeconds)), firstRate: Math.round(first), trialBusy };
}

/**
 * One round: each server in turn gets the same load. A server's CPU per request is its CPU over
 * its own slice divided by the requests it served; CPU in the gaps (while the others are loaded)
 * is not charged, so background costs (sampling thread, flushes, uploads) count in proportion to
 * the slices' length, as in a service under that load all the time.
 */
async function oneRound(servers, route, shape, calibration, round) {
  const perRequest = {};
  const busy = {};
  const rate = {};
  const order = servers.map((_, i) => servers[(i + round) % servers.length]);
  for (const s of order) {
    await sleep(Math.random() * PLAN.maxGapMs);
    const before = await s.cpuMicros();
    await s.ask('load-start');
    const load = shape === 'paced'
      ? await paced(s.port, route.url, calibration.paced.rate, calibration.paced.amount)
      : await saturate(s.port, route.url, calibration.saturating);
    await s.ask('load-end');
    const cpu = (await s.cpuMicros()) - before;
    perRequest[s.config] = cpu / load.served;
    busy[s.config] = cpu / 1000 / load.wallMs;
    rate[s.config] = load.served / (load.wallMs / 1000);
  }
  return { perRequest, busy, rate };
}

/**
 * One round of a no-load or light-load phase (issue 19): every server at once over one slice as
 * long as a window (uploadRate: each slice holds one window cut of every profiled server, where
 * shorter slices would hold one in some rounds and none in others), all paced at the same rate
 * (light) or left alone (idle), each by its own load generator. The `starting` server gets a
 * session started halfway through and stopped after the slice. All servers saw the same machine
 * in a round, so the paired differences cancel what moved it. Every request's latency is kept.
 */
async function windowedRound(servers, route, rate, roundIndex = 0) {
  if (!PLAN.windowedTurns) return windowedSlice(servers, route, rate);
  // BENCH_WINDOWED_TURNS: each server alone in its slice, the order turning with the round
  const order = servers.map((_, i) => servers[(i + roundIndex) % servers.length]);
  const out = { perRequest: {}, busy: {}, rate: {}, latency: {} };
  for (const server of order) {
    const one = await windowedSlice([server], route, rate);
    for (const key of Object.keys(out)) Object.assign(out[key], one[key]);
  }
  return out;
}

/** One slice of the servers given, all at once (see windowedRound). */
async function windowedSlice(servers, route, rate) {
  const sliceMs = report.durationMs(PLAN.uploadRate);
  await sleep(Math.random() * PLAN.maxGapMs);
  const before = await Promise.all(servers.map((s) => s.cpuMicros()));
  const started = performance.now();
  const starting = servers.find((s) => s.config === 'starting');
  let startAnswer;
  const startTimer = starting && setTimeout(() => (startAnswer = starting.ask('session-start')), sliceMs / 2);
  const amount = Math.max(1, Math.round((rate * sliceMs) / 1000));
  const loads = await Promise.all(servers.map((s) => (rate > 0 ? paced(s.port, route.url, rate, amount, true) : sleep(sliceMs).then(() => undefined))));
  const wallMs = performance.now() - started;
  clearTimeout(startTimer);
  await startAnswer;
  const after = await Promise.all(servers.map((s) => s.cpuMicros()));
  if (starting) await starting.ask('session-stop');
  const out = { perRequest: {}, busy: {}, rate: {}, latency: {} };
  servers.forEach((s, i) => {
    const cpu = after[i] - before[i];
    const load = loads[i];
    out.busy[s.config] = cpu / 1000 / wallMs;
    out.perRequest[s.config] = load ? cpu / load.served : NaN;
    out.rate[s.config] = load ? load.served / (wallMs / 1000) : 0;
    out.latency[s.config] = load ? stats.latencyPercentiles(load.latencies) : undefined;
  });
  return out;
}

/** A route's servers up at once; its shapes' rounds in turn; then each server's side figures. */
async function routePhases(routeKey, shapes, ctx) {
  const route = ROUTES[routeKey];
  // every server any of this route's shapes measures; each shape's rounds load its own list
  const configs = [...new Set(shapes.flatMap(({ shape }) => configsFor(routeKey, shape)))];
  const servers = [];
  const phases = [];
  try {
    for (const key of configs) {
      const server = await ServerProcess.start(key, ctx, { preload: route.preload });
      servers.push(server);
      await saturate(server.port, route.url, Math.round(route.warmup * PLAN.warmupScale) || 100);
    }
    const calibration = await calibrate(servers[0], route);
    // what the baseline did under saturation, for the paced rate: its rounds when they ran
    let saturated = { cpuPerRequest: calibration.cpuPerRequest, throughput: calibration.perSecond };
    const uploadsBefore = Object.fromEntries(servers.map((s) => [s.config, ctx.ingest.received(appName(s.config))]));
    for (const { shape, rounds: roundCount } of shapes) {
      const startedAt = Date.now();
      const measured = configsFor(routeKey, shape);
      const inPhase = servers.filter((s) => measured.includes(s.config));
      if (shape === 'paced') calibration.paced = await pacedRate(servers[0], route, saturated);
      const lightShare = report.lightShare(shape);
      if (lightShare > 0) calibration.light = await pacedRate(servers[0], route, saturated, lightShare);
      const size = shape === 'paced'
        ? `${calibration.paced.amount} requests at ${calibration.paced.rate}/s`
        : report.isWindowedShape(shape)
          ? `${PLAN.windowedTurns ? 'in turn' : 'all at once'}, ${lightShare > 0 ? `${calibration.light.rate} req/s each` : 'no load'}, slices of ${PLAN.uploadRate}`
          : `${calibration.saturating} requests, 50 connections`;
      console.log(`bench: ${route.label} ${shape}: ${roundCount} rounds of ${inPhase.length} servers, ${size} per slice`);
      const rounds = [];
      for (let round = 0; round < roundCount; round++) {
        const r = report.isWindowedShape(shape)
          ? await windowedRound(inPhase, route, lightShare > 0 ? calibration.light.rate : 0, round)
          : await oneRound(inPhase, route, shape, calibration, round);
        rounds.push(r);
        console.log(`  round ${round + 1}: ${inPhase.map((s) => (report.isWindowedShape(shape) ? `${s.config} ${(r.busy[s.config] * 1000).toFixed(2)} ms/s` : `${s.config} ${r.perRequest[s.config].toFixed(1)} µs/req`)).join(', ')}`);
      }
      if (shape === 'saturating') {
        saturated = { cpuPerRequest: report.median(rounds.map((r) => r.perRequest.baseline)), throughput: report.median(rounds.map((r) => r.rate.baseline)) };
      }
      phases.push({
        route: routeKey,
        url: route.url,
        label: route.label,
        shape,
        configs: measured,
        calibration: { ...calibration },
        rounds: Object.fromEntries(measured.map((c) => [c, rounds.map((r) => r.perRequest[c])])),
        busy: Object.fromEntries(measured.map((c) => [c, rounds.map((r) => r.busy[c])])),
        achievedRate: Object.fromEntries(measured.map((c) => [c, rounds.map((r) => r.rate[c])])),
        ...(rounds[0] && rounds[0].latency ? { latency: Object.fromEntries(measured.map((c) => [c, rounds.map((r) => r.latency[c])])) } : {}),
        seconds: (Date.now() - startedAt) / 1000,
      });
    }
    const servers_ = {};
    for (const s of servers) {
      const uploadsMeasured = ctx.ingest.received(appName(s.config)) - uploadsBefore[s.config];
      const stats = await s.ask('stats');
      const closed = await s.close();
      const ingest = ctx.ingest.take(appName(s.config));
      servers_[s.config] = {
        eldP99Ms: report.median(stats.eldSlices.map((x) => x.p99Ms)),
        eldMaxMs: Math.max(...stats.eldSlices.map((x) => x.maxMs)),
        maxRssMB: stats.maxRssMB,
        startup: s.startup,
        uploadsMeasured,
        bytesPerMin: (ingest.bytes / s.lifetimeMs) * 60_000,
        ingest,
        profiler: closed.profiler,
        engineFloor: stats.engineFloor,
      };
    }
    for (const phase of phases) phase.servers = servers_;
    return phases;
  } finally {
    for (const s of servers) s.kill();
  }
}

/**
 * The longest block while idle across one upload (after a short mixed load), PROBE_FLUSHES times:
 * the median is the figure (one probe read 8-24 ms on the same build from run to run), the
 * largest is kept beside it. And the startup block.
 */
const PROBE_FLUSHES = 3;
async function flushProbe(config, ctx) {
  const server = await ServerProcess.start(config, ctx, { uploadRate: PLAN.probeUploadRate });
  try {
    const uploadsBefore = ctx.ingest.received(appName(config));
    const watched = [];
    for (let i = 0; i < PROBE_FLUSHES; i++) {
      for (const url of [ROUTES.hello.url, ROUTES.orders.url, ROUTES.ping.url]) await saturate(server.port, url, Math.max(50, PLAN.probeRequests / 3));
      watched.push(await server.ask('watch', { ms: report.durationMs(PLAN.probeUploadRate) + 500 }));
    }
    const uploads = ctx.ingest.received(appName(config)) - uploadsBefore;
    await server.close();
    ctx.ingest.take(appName(config));
    const cpu = watched.map((w) => w.cpuMs);
    return {
      wallMs: report.median(watched.map((w) => w.wallMs)),
      cpuMs: report.median(cpu),
      cpuMsMax: Math.max(...cpu),
      cpuMsEach: cpu,
      cpuSource: watched[0].cpuSource,
      uploads,
      startup: server.startup,
    };
  } finally {
    server.kill();
  }
}

async function labelAccuracy() {
  const fixture = path.join(__dirname, '..', 'test', 'fixtures', 'accuracy-workload.js');
  if (!fs.existsSync(fixture)) return undefined;
  process.env.ACCURACY_USE_DIST = '1'; // the children load the built dist/, like the servers
  const workload = require(fixture);
  const out = {};
  for (const [who, mode] of [['ours', 'ours'], ['pyroscope', 'pyroscope-setLabels']]) {
    try {
      out[who] = await workload.runInChild(mode, { durationMs: PLAN.accuracyMs, connections: PLAN.connections, timeoutMs: 60_000 });
    } catch (error) {
      out[who] = { mode, error: error.message };
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------

function machine(place) {
  const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
  return {
    node: process.version,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    nproc: os.cpus().length, // availableParallelism() would say 1 once the runner is pinned
    cpuModel: os.cpus()[0].model.trim(),
    placement: place.text,
    loadBefore: load(),
    loadAfter: undefined,
    load,
  };
}

async function main() {
  const started = Date.now();
  const place = placement();
  const env = machine(place);
  const nodeMajor = Number(process.versions.node.split('.')[0]);
  console.log(`bench: Node ${env.node}, ${env.nproc} cores, ${place.text}, load average ${env.loadBefore}${QUICK ? ' (BENCH_QUICK: smoke test, figures not meaningful)' : ''}`);
  const greet = compileGreetHandlers();
  const ingest = new IngestStandIn();
  const ctx = { ingest, ingestUrl: await ingest.listen(), greetRoutesJs: greet.routesJs, placement: place };
  try {
    const phases = [];
    const routeOrder = [...new Set(PLAN.phases.map((p) => p.route))];
    for (const route of routeOrder) phases.push(...(await routePhases(route, PLAN.phases.filter((p) => p.route === route), ctx)));

    const probe = {};
    if (!SKIP.includes('probe')) {
      console.log(`bench: flush probe (idle across one upload at uploadRate ${PLAN.probeUploadRate}, longest block)`);
      for (const key of ['baseline', 'continuous', 'idle', 'pyroscope']) {
        probe[key] = await flushProbe(key, ctx);
        const p = probe[key];
        console.log(`  ${key.padEnd(10)} ${p.cpuMs.toFixed(1)} ms CPU median of ${p.cpuMsEach.map((x) => x.toFixed(1)).join(', ')} (${p.cpuSource}), ${p.wallMs.toFixed(1)} ms wall, uploads ${p.uploads}`);
      }
    }
    let accuracy;
    if (!SKIP.includes('accuracy')) {
      console.log('bench: label accuracy (test/fixtures/accuracy-workload.js)');
      accuracy = await labelAccuracy();
    }

    env.loadAfter = env.load();
    const elapsedS = (Date.now() - started) / 1000;
    const tag = process.env.BENCH_TAG ? `-${process.env.BENCH_TAG.replace(/[^\w-]/g, '')}` : '';
    const sectionKey = `${nodeMajor}${tag}`;
    const run = { env: { ...env, load: undefined, nodeMajor, tag, elapsedS }, plan: PLAN, phases, probe, accuracy };
    const analysis = report.analyze(run);
    const section = report.markdownSection(run, analysis);
    console.log(`\n${section}\n`);
    console.log(`README column for Node ${nodeMajor} (all columns: node bench/report.js --readme):\n`);
    console.log(`${report.overheadTable([{ run, analysis }])}\n`);
    // only a full run replaces a Node version's section and file; a partial or quick one only if asked
    const partial = QUICK || Boolean(process.env.BENCH_PHASES || process.env.BENCH_SKIP || process.env.BENCH_PRELOAD || process.env.BENCH_CONFIGS || process.env.BENCH_EXTRA);
    const write = !partial || process.env.BENCH_WRITE === '1';
    const jsonFile = process.env.BENCH_JSON || (write ? path.join(__dirname, 'results', `node${sectionKey}.json`) : undefined);
    if (jsonFile) {
      fs.mkdirSync(path.dirname(jsonFile), { recursive: true });
      fs.writeFileSync(jsonFile, `${JSON.stringify(run, null, 1)}\n`);
      console.log(`bench: raw figures in ${path.relative(process.cwd(), jsonFile)}`);
    }
    if (write) {
      report.writeResults(RESULTS_FILE, sectionKey, section);
      console.log(`bench: wrote the Node ${sectionKey} section of ${path.relative(process.cwd(), RESULTS_FILE)}`);
    }
    console.log(`bench: took ${elapsedS.toFixed(0)} s`);
  } finally {
    greet.cleanup();
    await ingest.close();
  }
}

main().catch((error) => {
  console.error(`bench failed: ${error && error.stack ? error.stack : error}`);
  process.exitCode = 1;
});
