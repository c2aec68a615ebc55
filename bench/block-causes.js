'use strict';
/**
 * Diagnosis (not part of `npm run bench`): the flush probe's longest block, the startup block and
 * peak RSS of bench/server.js's `continuous` configuration under plugin option variants, run
 * side by side in rounds (A, B, C, A, B, C, ...) so the shared machine's drift hits every variant
 * alike. Each round: start (startup block), 200 requests to each of /hello, /orders, /ping, then
 * the longest block over one upload at uploadRate 2s (as bench/run.js flushProbe), then peak RSS.
 *
 *   node bench/block-causes.js ROUNDS NAME=JSON_OPTIONS[@SERVER_JS] ...
 *   e.g. node bench/block-causes.js 5 default='{}' nomaps='{"sourceMaps":false}' baseline=baseline
 *   BLOCK_PIN=1: each server pinned to core 1 (taskset), as bench/run.js places them
 *
 * A variant whose value is `baseline` runs the baseline server (no profiler), `engine` the engine floor. `@path` runs another
 * build's server.js (an older commit's worktree, with this server.js copied next to its dist/).
 */
const { spawn } = require('node:child_process');
const http = require('node:http');
const path = require('node:path');
const { IngestStandIn } = require('./ingest');
const { compileGreetHandlers } = require('./greet');

const [rounds, ...specs] = process.argv.slice(2);
const variants = specs.map((spec) => {
  const [name, rest] = spec.split(/=(.*)/s);
  const [options, serverJs] = rest.split('@');
  const config = options === 'baseline' || options === 'engine' ? options : 'continuous';
  return { name, config, options, serverJs: serverJs || path.join(__dirname, 'server.js') };
});

function nextMessage(child, what) {
  return new Promise((resolve, reject) => {
    const onMessage = (msg) => { cleanup(); msg.type === 'error' ? reject(new Error(msg.error)) : resolve(msg); };
    const onExit = (code) => { cleanup(); reject(new Error(`server exited (${code}) waiting for ${what}`)); };
    const cleanup = () => { child.off('message', onMessage); child.off('exit', onExit); };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

async function load(port, url, amount) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
  let left = amount;
  const one = () => new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: url, agent }, (res) => { res.resume(); res.on('end', resolve); }).on('error', reject);
  });
  await Promise.all(Array.from({ length: 20 }, async () => { while (left-- > 0) await one(); }));
  agent.destroy();
}

async function once(variant, ctx) {
  const config = variant.config;
  const env = { ...process.env, BENCH_SERVER_PRELOAD: '', BENCH_PLUGIN_OPTIONS: config === 'continuous' ? variant.options : '' };
  // BLOCK_NODE_ARGS='--cpu-prof --cpu-prof-dir=DIR': flags for the servers' node
  const nodeArgs = (process.env.BLOCK_NODE_ARGS || '').split(' ').filter(Boolean);
  const args = [...nodeArgs, variant.serverJs, config, ctx.ingestUrl, ctx.routesJs, '2s'];
  const stdio = ['ignore', 'inherit', 'inherit', 'ipc'];
  // BLOCK_PIN=1: the server on core 1, as bench/run.js places it (its threads share that core)
  const child = process.env.BLOCK_PIN === '1' ? spawn('taskset', ['-c', '1', process.execPath, ...args], { stdio, env }) : spawn(process.execPath, args, { stdio, env });
  try {
    const listening = await nextMessage(child, 'listening');
    for (const url of ['/hello', '/orders?limit=50&offset=100&status=open', '/ping']) await load(listening.port, url, 200);
    const ask = (type, extra) => { const m = nextMessage(child, type); child.send({ type, ...extra }); return m; };
    const watched = await ask('watch', { ms: 2500 });
    const stats = await ask('stats');
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await ask('close');
    await exited;
    return { startCpu: listening.startup.cpuMs, startWall: listening.startup.wallMs, flushCpu: watched.cpuMs, flushWall: watched.wallMs, gcMs: watched.maxGcMs ?? 0, rssMB: stats.maxRssMB };
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

async function main() {
  const ingest = new IngestStandIn();
  const greet = compileGreetHandlers();
  const ctx = { ingestUrl: await ingest.listen(), routesJs: greet.routesJs };
  const results = Object.fromEntries(variants.map((v) => [v.name, []]));
  try {
    for (let r = 0; r < Number(rounds); r++) {
      for (const v of variants) {
        const x = await once(v, ctx);
        results[v.name].push(x);
        console.log(`round ${r + 1} ${v.name.padEnd(12)} start ${x.startCpu.toFixed(1)} ms CPU, flush ${x.flushCpu.toFixed(1)} ms CPU (${x.flushWall.toFixed(1)} wall; longest GC ${x.gcMs.toFixed(1)} ms), RSS ${x.rssMB.toFixed(1)} MB`);
        ingest.take(`bench-${v.config}`);
      }
    }
  } finally {
    greet.cleanup();
    await ingest.close();
  }
  console.log(`\nmedian [min, max] over ${rounds} rounds (Node ${process.version})`);
  for (const [name, xs] of Object.entries(results)) {
    const f = (k) => `${median(xs.map((x) => x[k])).toFixed(1)} [${Math.min(...xs.map((x) => x[k])).toFixed(1)}, ${Math.max(...xs.map((x) => x[k])).toFixed(1)}]`;
    console.log(`${name.padEnd(12)} start CPU ${f('startCpu')}  flush CPU ${f('flushCpu')}  flush wall ${f('flushWall')}  peak RSS MB ${f('rssMB')}`);
  }
}

main().catch((error) => { console.error(error); process.exitCode = 1; });
