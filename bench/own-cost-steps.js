'use strict';
/**
 * Diagnosis (issue 19, not part of `npm run bench`): where the plugin's own CPU goes beside the
 * engine floor's, step by step, at no load or under a paced load. Starts bench/server.js once per
 * configuration (default `engine` and `continuous`, pinned to core 1 like the bench, TypeScript's
 * compiler loaded) with bench/own-cost-probe.js preloaded, which counts the CPU of every window's
 * steps, checks and uploads. Then ROUNDS rounds, in each one every server in turn (order turning)
 * gets a slice of SLICE_S seconds, idle (RATE 0) or paced at RATE requests per second on the
 * realistic `/orders`; the probe counts only inside a server's own slices. `nomaps` is the
 * plugin continuous with `sourceMaps: false`. Prints per
 * configuration the CPU per second of each step over its slices, the whole process's, and each
 * thread's (from /proc: main thread, V8's sampling thread, libuv's pool, GC helpers).
 *
 *   npm run build && node bench/own-cost-steps.js [RATE] [ROUNDS] [SLICE_S] [CONFIGS]   (default 0 4 30 engine,continuous)
 *
 * Idle (RATE 0) servers all idle at once, so their slices overlap and every one is a full window
 * or two (uploadRate 15 s). The load generator runs in this process on core 0.
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { compileGreetHandlers } = require('./greet');
const { IngestStandIn } = require('./ingest');

const [rateArg = '0', roundsArg = '4', sliceArg = '30', configsArg = 'engine,continuous'] = process.argv.slice(2);
const RATE = Number(rateArg);
const ROUNDS = Number(roundsArg);
const SLICE_S = Number(sliceArg);
const CONFIGS = configsArg.split(',');
const URL = '/orders?limit=50&offset=100&status=open';
const TICK_S = 1 / 100; // /proc's clock ticks (USER_HZ 100 on Linux)
const pinned = os.availableParallelism() >= 2;

/** Configurations of the plugin with options of their own (BENCH_PLUGIN_OPTIONS of bench/server.js). */
const VARIANTS = {
  nomaps: { sourceMaps: false },
};

function start(config, ingestUrl, routesJs) {
  const out = path.join(os.tmpdir(), `own-cost-${process.pid}-${config}.json`);
  const variant = VARIANTS[config];
  // OWN_COST_NODE_ARGS='--cpu-prof --cpu-prof-dir=DIR': node options of the servers (a CPU profile of each)
  const nodeArgs = (process.env.OWN_COST_NODE_ARGS ?? '').split(' ').filter(Boolean).map((a) => a.replace('{config}', config));
  const args = [...nodeArgs, '-r', path.join(__dirname, 'own-cost-probe.js'), path.join(__dirname, 'server.js'), variant ? 'continuous' : config, ingestUrl, routesJs, '15s'];
  const env = { ...process.env, BENCH_SERVER_PRELOAD: 'typescript', OWN_COST_OUT: out };
  if (variant) env.BENCH_PLUGIN_OPTIONS = JSON.stringify(variant);
  const stdio = ['ignore', 'inherit', 'inherit', 'ipc'];
  const child = pinned ? spawn('taskset', ['-c', '1', process.execPath, ...args], { stdio, env }) : spawn(process.execPath, args, { stdio, env });
  return new Promise((resolve, reject) => {
    child.once('message', (msg) => (msg.type === 'listening' ? resolve({ config, child, port: msg.port, out, threads: {}, requests: 0 }) : reject(new Error(msg.error))));
    child.once('exit', (code) => reject(new Error(`${config} exited (${code})`)));
  });
}

/** utime + stime of each of the process's threads, in seconds, by thread name (same names summed). */
function threadTimes(pid) {
  const byName = {};
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      // OWN_COST_TIDS=1: every thread apart (thread ids differ between servers: read them one server at a time)
      const name = Number(tid) === pid ? 'main thread' : process.env.OWN_COST_TIDS ? `${comm} ${tid}` : comm;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      byName[name] = (byName[name] ?? 0) + (Number(fields[11]) + Number(fields[12])) * TICK_S;
    } catch {
      // a thread that ended between the listing and the read
    }
  }
  return byName;
}

/** The probe counts between two SIGUSR2; /proc's thread times are taken at the same moments. */
function toggle(server, begin) {
  const pid = server.child.pid;
  // taskset execs node in place: the pid is node's
  const times = threadTimes(pid);
  server.child.kill('SIGUSR2');
  for (const [name, s] of Object.entries(times)) server.threads[name] = (server.threads[name] ?? 0) + (begin ? -s : s);
  const total = Object.values(times).reduce((a, b) => a + b, 0);
  if (begin) server.sliceStart = { cpuS: total, wall: performance.now() };
  else (server.slices ??= []).push({ cpuS: total - server.sliceStart.cpuS, seconds: (performance.now() - server.sliceStart.wall) / 1000 });
}

/** Paced open-loop load: `rate` requests per second for `seconds` (a request is due whether or not earlier ones were answered). */
function paced(port, rate, seconds) {
  const request = Buffer.from(`GET ${URL} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  const amount = Math.round(rate * seconds);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const free = [];
    const sockets = [];
    let issued = 0;
    let answered = 0;
    let backlog = 0;
    const done = () => {
      for (const s of sockets) s.destroy();
      resolve(answered);
    };
    const open = () => {
      const socket = net.connect(port, '127.0.0.1');
      socket.setNoDelay(true);
      socket.on('data', (chunk) => {
        for (let at = chunk.indexOf('HTTP/1.1 '); at !== -1; at = chunk.indexOf('HTTP/1.1 ', at + 9)) {
          answered++;
          if (backlog > 0) {
            backlog--;
            socket.write(request);
          } else free.push(socket);
        }
        if (answered >= amount) done();
      });
      socket.on('error', reject);
      sockets.push(socket);
      return socket;
    };
    const tick = () => {
      const due = Math.min(amount, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
      for (; issued < due; issued++) {
        if (free.length > 0) free.pop().write(request);
        else if (sockets.length < 64) open().write(request);
        else backlog++;
      }
      if (issued < amount) setTimeout(tick, 1);
    };
    tick();
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const ingest = new IngestStandIn();
  const ingestUrl = await ingest.listen();
  const greet = compileGreetHandlers();
  const servers = [];
  try {
    for (const config of CONFIGS) servers.push(await start(config, ingestUrl, greet.routesJs));
    for (const server of servers) await paced(server.port, 200, 5); // warm-up: JIT, route caches
    await sleep(20_000); // past the first windows
    for (let round = 0; round < ROUNDS; round++) {
      if (RATE === 0) {
        for (const server of servers) toggle(server, true);
        await sleep(SLICE_S * 1000);
        for (const server of servers) toggle(server, false);
        continue;
      }
      for (let i = 0; i < servers.length; i++) {
        const server = servers[(i + round) % servers.length];
        await sleep(Math.random() * 250);
        toggle(server, true);
        const served = await paced(server.port, RATE, SLICE_S);
        server.requests += served;
        toggle(server, false);
        server.slices[server.slices.length - 1].requests = served;
      }
    }
    for (const server of servers) {
      const exited = new Promise((resolve) => server.child.once('exit', resolve));
      server.child.send({ type: 'close' });
      await exited;
      server.result = JSON.parse(fs.readFileSync(server.out, 'utf8'));
      fs.rmSync(server.out, { force: true });
    }
  } finally {
    for (const server of servers) if (server.child.exitCode === null) server.child.kill('SIGKILL');
    greet.cleanup();
    await ingest.close();
  }
  const first = servers[0].result;
  console.log(
    `${first.node}, ${RATE === 0 ? 'no load' : `paced ${RATE} req/s on /orders`}, ${ROUNDS} rounds of ${SLICE_S} s, uploadRate 15s; ` +
      `steps: ${first.threadCpu ? 'main thread CPU' : 'process CPU (no threadCpuUsage: all threads)'}, ms per second of slice`,
  );
  const labels = [...new Set(servers.flatMap((s) => [...Object.keys(s.result.spent), ...Object.keys(s.result.counted)]))];
  const threadNames = [...new Set(servers.flatMap((s) => Object.keys(s.threads)))].sort();
  const col = (x) => String(x).padStart(14);
  console.log(`${''.padEnd(40)}${servers.map((s) => col(s.config)).join('')}`);
  const row = (label, f) => console.log(`${label.padEnd(40)}${servers.map((s) => col(f(s))).join('')}`);
  row('sum of /proc thread times, ms/s', (s) => (Object.values(s.threads).reduce((a, b) => a + b, 0) * 1000 / s.result.seconds).toFixed(2));
  row('process CPU, ms/s', (s) => (s.result.procUs / 1000 / s.result.seconds).toFixed(2));
  if (first.threadCpu) row('main thread CPU, ms/s', (s) => (s.result.cpuUs / 1000 / s.result.seconds).toFixed(2));
  if (RATE > 0) row('process CPU per request, µs', (s) => (s.result.procUs / s.requests).toFixed(1));
  for (const name of threadNames) row(`  /proc: ${name}, ms/s`, (s) => ((s.threads[name] ?? 0) * 1000 / s.result.seconds).toFixed(2));
  for (const label of labels) {
    row(`  ${label}, ms/s`, (s) => {
      const x = s.result.spent[label];
      if (x) return `${(x.us / 1000 / s.result.seconds).toFixed(3)} (${x.calls})`;
      const n = s.result.counted[label];
      return n === undefined ? '-' : `${(n / s.result.seconds).toFixed(1)}/s`;
    });
  }
  // paired rounds: each configuration minus the first one, per round, in ms/s (and µs per request under load)
  for (const server of servers.slice(1)) {
    const diffs = server.slices.map((x, i) => {
      const base = servers[0].slices[i];
      return RATE > 0 ? ((x.cpuS / x.requests) - (base.cpuS / base.requests)) * 1e6 : ((x.cpuS / x.seconds) - (base.cpuS / base.seconds)) * 1000;
    });
    const mean = diffs.reduce((a, b) => a + b, 0) / diffs.length;
    const se = Math.sqrt(diffs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, diffs.length - 1) / diffs.length);
    console.log(`${server.config} - ${servers[0].config}, paired per round (/proc, all threads): ${mean.toFixed(2)} ${RATE > 0 ? 'µs/request' : 'ms/s'} (standard error ${se.toFixed(2)}; rounds ${diffs.map((d) => d.toFixed(1)).join(' ')})`);
  }
  console.log('(n): calls counted; async steps count everything the main thread ran from their call until they settled');
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
