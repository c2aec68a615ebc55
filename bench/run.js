'use strict';
/**
 * `npm run bench` (issue 6): the plugin's cost side by side with no profiling and with
 * @pyroscope/nodejs, on the Node that runs this script (children use the same executable).
 *
 * 1. For `/hello` then greet's `/ping`: the four configurations (baseline, continuous, idle,
 *    pyroscope), each its own server process (bench/server.js), started and warmed up; then rounds
 *    A B C D (order turning): each server in turn gets the same fixed number of requests
 *    (autocannon), about one uploadRate's worth. A server's CPU time over its slice
 *    (`process.cpuUsage()`, asked over IPC) / its requests = CPU per request. Slices seconds apart
 *    see about the same machine load: fair on a shared machine.
 * 2. Flush probe: per configuration, one server under a short mixed load, then watched idle
 *    across one upload: the longest block is the flush's (bench/block-watch.js).
 * 3. Label accuracy: test/fixtures/accuracy-workload.js, ours vs @pyroscope/nodejs's setLabels.
 * 4. Tables and targets printed, and bench/RESULTS.md's section for this Node major rewritten.
 *
 * Environment: BENCH_QUICK=1 (one round, few requests, short uploads: a smoke test; RESULTS.md is
 * left alone unless BENCH_WRITE=1), BENCH_JSON=FILE (raw figures as JSON), BENCH_ROUNDS=N.
 * Diagnosis: BENCH_EXTRA=baseline-again,disabled,large-graph,loaded,engine (more configurations, see
 * bench/server.js), BENCH_ROUTES=/hello (fewer routes), BENCH_CPU_ONLY=1 (CPU rounds only, nothing
 * written), BENCH_PRELOAD=typescript (every server loads these modules first; nothing written).
 */
const { fork } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const autocannon = require('autocannon');
const { compileGreetHandlers } = require('./greet');
const { IngestStandIn } = require('./ingest');
const report = require('./report');

const QUICK = process.env.BENCH_QUICK === '1';
const ROUTES = process.env.BENCH_ROUTES ? process.env.BENCH_ROUTES.split(',') : ['/hello', '/ping'];
const PLAN = {
  quick: QUICK,
  rounds: Number(process.env.BENCH_ROUNDS) || (QUICK ? 1 : 5),
  connections: 50,
  // 3x the default 15s, so flush costs are counted three times as often as in real use, and a
  // slice of about one uploadRate holds about one flush of each profiler
  uploadRate: QUICK ? '1s' : '5s',
  warmup: { '/hello': QUICK ? 500 : 3000, '/ping': QUICK ? 50 : 300 },
  // Requests per slice: the same for every configuration and round of a route, chosen once by a
  // calibration on the baseline so a slice lasts about `sliceSeconds` (one uploadRate) on the
  // machine as it is.
  sliceSeconds: QUICK ? 1 : 5,
  // upper bounds: the VM slows sustained CPU work (greet's /ping from 1.2 to 5 ms a call), which
  // would stretch a calibrated slice several times over
  sliceBounds: { '/hello': [2000, 100_000], '/ping': [150, 1500] },
  slice: QUICK ? { '/hello': 1000, '/ping': 100 } : {},
  probeRequests: QUICK ? 100 : 600,
  accuracyMs: QUICK ? 1000 : 3000,
};
const UPLOAD_RATE_MS = Number.parseInt(PLAN.uploadRate, 10) * 1000;
const MESSAGE_TIMEOUT_MS = 120_000;
const RESULTS_FILE = path.join(__dirname, 'RESULTS.md');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const appName = (config) => `bench-${config}`;
/** The four configurations, plus diagnosis ones named in BENCH_EXTRA (e.g. `engine`), in this order. */
const EXTRA = (process.env.BENCH_EXTRA || '').split(',').filter(Boolean);
const CONFIG_KEYS = [...report.CONFIGS.map((c) => c.key), ...report.EXTRA_CONFIGS.map((c) => c.key).filter((k) => EXTRA.includes(k))];

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
  static async start(config, ctx) {
    const child = fork(path.join(__dirname, 'server.js'), [config, ctx.ingestUrl, ctx.greetRoutesJs, PLAN.uploadRate], {
      execPath: process.execPath,
      execArgv: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
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

/** `amount` requests over PLAN.connections keep-alive connections on `target` (a path, or paths in turn). */
async function drive(port, target, amount) {
  const requests = Array.isArray(target) ? target.map((p) => ({ path: p })) : undefined;
  const url = `http://127.0.0.1:${port}${requests ? '' : target}`;
  const result = await autocannon({ url, requests, connections: PLAN.connections, amount, timeout: 60 });
  const failed = result.errors + result.timeouts + result.non2xx;
  if (failed > amount / 100) throw new Error(`load on ${target}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx of ${amount}`);
  if (failed > 0) console.warn(`  (load on ${target}: ${failed} of ${amount} requests failed; CPU is divided by the ${result['2xx']} served)`);
  return result;
}

// ------------------------------------------------------------------------------------------------
// The phases

/** Requests per slice for `route`: the baseline's throughput x PLAN.sliceSeconds, bounded. */
async function calibrate(server, route) {
  const load = await drive(server.port, route, PLAN.warmup[route]);
  // Little's law: autocannon ends on its 1 s tick, so its duration overstates the time taken
  const perSecond = PLAN.connections / (load.latency.mean / 1000);
  const [low, high] = PLAN.sliceBounds[route];
  return Math.round(Math.min(high, Math.max(low, perSecond * PLAN.sliceSeconds)) / 50) * 50;
}

/**
 * One round: each server in turn gets `slice` requests. A server's CPU per request is its CPU over
 * its own slice divided by the requests it served. A slice lasts about one uploadRate, so each
 * holds about one flush: window costs are spread over the requests of the time they cover, as in
 * a busy service (charging a server's idle time while the others are loaded to its own requests
 * would multiply its background costs by the number of configurations).
 */
async function oneRound(servers, route, slice, round) {
  const perRequest = {};
  // the order turns each round (A B C D, B C D A, ...): no configuration always follows the same one
  const order = servers.map((_, i) => servers[(i + round) % servers.length]);
  for (const s of order) {
    const before = await s.cpuMicros();
    await s.ask('load-start');
    const served = (await drive(s.port, route, slice))['2xx'];
    await s.ask('load-end');
    perRequest[s.config] = ((await s.cpuMicros()) - before) / served;
  }
  return perRequest;
}

/** All four servers up at once for `route`, rounds of A B C D slices (order turning), then their figures. */
async function routePhase(route, ctx) {
  const servers = [];
  try {
    for (const key of CONFIG_KEYS) {
      const server = await ServerProcess.start(key, ctx);
      servers.push(server);
      await drive(server.port, route, PLAN.warmup[route]);
    }
    const slice = (PLAN.slice[route] ??= await calibrate(servers[0], route));
    console.log(`bench: ${route}: ${PLAN.rounds} rounds of ${servers.map((s) => s.config).join(' ')}, ${slice} requests per slice`);
    const uploadsBefore = Object.fromEntries(servers.map((s) => [s.config, ctx.ingest.received(appName(s.config))]));
    const rounds = [];
    for (let round = 1; round <= PLAN.rounds; round++) {
      const r = await oneRound(servers, route, slice, round - 1);
      rounds.push(r);
      console.log(`  round ${round}: ${servers.map((s) => `${s.config} ${r[s.config].toFixed(1)}`).join(', ')} µs/req`);
    }
    const cells = [];
    for (const s of servers) {
      const uploadsMeasured = ctx.ingest.received(appName(s.config)) - uploadsBefore[s.config];
      const stats = await s.ask('stats');
      const closed = await s.close();
      const ingest = ctx.ingest.take(appName(s.config));
      cells.push({
        config: s.config,
        route,
        slice,
        rounds: rounds.map((r) => r[s.config]),
        eldP99Ms: report.median(stats.eldSlices.map((x) => x.p99Ms)),
        eldMaxMs: Math.max(...stats.eldSlices.map((x) => x.maxMs)),
        maxRssMB: stats.maxRssMB,
        startup: s.startup,
        uploadsMeasured,
        bytesPerMin: (ingest.bytes / s.lifetimeMs) * 60_000,
        ingest,
        profiler: closed.profiler,
      });
    }
    return cells;
  } finally {
    for (const s of servers) s.kill();
  }
}

/** The longest block while idle across one upload (after a short mixed load), and the startup block. */
async function flushProbe(config, ctx) {
  const server = await ServerProcess.start(config, ctx);
  try {
    await drive(server.port, ROUTES, PLAN.probeRequests);
    const uploadsBefore = ctx.ingest.received(appName(config));
    const watched = await server.ask('watch', { ms: UPLOAD_RATE_MS + 500 });
    const uploads = ctx.ingest.received(appName(config)) - uploadsBefore;
    await server.close();
    ctx.ingest.take(appName(config));
    return { wallMs: watched.wallMs, cpuMs: watched.cpuMs, cpuSource: watched.cpuSource, uploads, startup: server.startup };
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

function machine() {
  const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
  return {
    node: process.version,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    nproc: os.availableParallelism(),
    cpuModel: os.cpus()[0].model.trim(),
    loadBefore: load(),
    loadAfter: undefined,
    load,
  };
}

/** BENCH_CPU_ONLY=1 (diagnosis): the CPU figures only, no probe, accuracy or RESULTS.md. */
function printCpuOnly(summary) {
  for (const [config, { routes }] of Object.entries(summary)) {
    const cells = Object.entries(routes).map(
      ([route, r]) => `${route} ${r.cpuPerRequest.toFixed(1)} µs/req, ratio ${r.ratio.toFixed(3)} (paired ${r.pairedRatio.toFixed(3)})`,
    );
    console.log(`  ${config.padEnd(10)} ${cells.join(' | ')}`);
  }
}

async function main() {
  const started = Date.now();
  const env = machine();
  const nodeMajor = Number(process.versions.node.split('.')[0]);
  console.log(`bench: Node ${env.node}, ${env.nproc} cores, load average ${env.loadBefore}${QUICK ? ' (BENCH_QUICK)' : ''}${process.env.BENCH_PRELOAD ? ` (BENCH_PRELOAD=${process.env.BENCH_PRELOAD})` : ''}`);
  const greet = compileGreetHandlers();
  const ingest = new IngestStandIn();
  const ctx = { ingest, ingestUrl: await ingest.listen(), greetRoutesJs: greet.routesJs };
  try {
    const cells = [];
    for (const route of ROUTES) cells.push(...(await routePhase(route, ctx)));
    if (process.env.BENCH_CPU_ONLY === '1') return printCpuOnly(report.summarize(cells, {}, ROUTES));
    console.log('bench: flush probe (idle across one upload, longest block)');
    const probe = {};
    for (const { key } of report.CONFIGS) {
      probe[key] = await flushProbe(key, ctx);
      const p = probe[key];
      console.log(`  ${key.padEnd(10)} ${p.cpuMs.toFixed(1)} ms CPU (${p.cpuSource}), ${p.wallMs.toFixed(1)} ms wall, uploads ${p.uploads}`);
    }
    console.log('bench: label accuracy (test/fixtures/accuracy-workload.js)');
    const accuracy = await labelAccuracy();

    env.loadAfter = env.load();
    const summary = report.summarize(cells, probe, ROUTES);
    const targets = report.evaluateTargets({ summary, probe, accuracy, nodeMajor });
    const elapsedS = (Date.now() - started) / 1000;
    const section = report.markdownSection({ env, plan: PLAN, summary, probe, accuracy, targets, routes: ROUTES, elapsedS });
    console.log(`\n${section}\n`);
    if ((!QUICK || process.env.BENCH_WRITE === '1') && !process.env.BENCH_PRELOAD) {
      report.writeResults(RESULTS_FILE, nodeMajor, section);
      console.log(`bench: wrote the Node ${nodeMajor} section of ${path.relative(process.cwd(), RESULTS_FILE)}`);
    }
    if (process.env.BENCH_JSON) {
      fs.writeFileSync(process.env.BENCH_JSON, JSON.stringify({ env: { ...env, load: undefined }, plan: PLAN, cells, probe, accuracy, summary, targets }, null, 2));
    }
  } finally {
    greet.cleanup();
    await ingest.close();
  }
}

main().catch((error) => {
  console.error(`bench failed: ${error && error.stack ? error.stack : error}`);
  process.exitCode = 1;
});
