'use strict';
/**
 * What the heap sampler costs between sessions (heapThreshold / memoryThreshold keep it running
 * from ready()): CPU time per request of `/hello` in two servers that differ only by that,
 * `idle` (threshold not reached, nothing sampling) and `idle-heap` (the same plus heapThreshold:
 * 1000, never reached, so the sampler runs and no session starts). Paired rounds: each round drives
 * the same number of requests through both, the order turning, and the ratio of the pair is kept.
 *
 *   npm run build && node bench/heap-sampler-idle.js      (HEAP_BENCH_ROUNDS, HEAP_BENCH_REQUESTS)
 *
 * HEAP_BENCH_PAIR=idle,idle runs the same comparison between two identical servers (A/A): how far
 * apart two servers read on this machine when nothing differs.
 */
const { fork } = require('node:child_process');
const http = require('node:http');
const path = require('node:path');
const autocannon = require('autocannon');
const { compileGreetHandlers } = require('./greet');

const ROUNDS = Number(process.env.HEAP_BENCH_ROUNDS) || 7;
const REQUESTS = Number(process.env.HEAP_BENCH_REQUESTS) || 20_000;
const [CONFIG_A, CONFIG_B] = (process.env.HEAP_BENCH_PAIR || 'idle,idle-heap').split(',');

function start(name, config, greetRoutesJs, ingestUrl) {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(__dirname, 'server.js'), [config, ingestUrl, greetRoutesJs, '5s'], { stdio: 'inherit' });
    const pending = [];
    child.on('message', (msg) => {
      if (msg.type === 'error') return reject(new Error(msg.error));
      if (msg.type === 'listening') return resolve({ name, config, child, port: msg.port, ask });
      pending.shift()?.(msg);
    });
    function ask(type) {
      return new Promise((answer) => {
        pending.push(answer);
        child.send({ type });
      });
    }
  });
}

async function cpuPerRequest(server) {
  const before = (await server.ask('cpu')).micros;
  const result = await autocannon({ url: `http://127.0.0.1:${server.port}/hello`, connections: 10, amount: REQUESTS });
  const after = (await server.ask('cpu')).micros;
  if (result.non2xx || result.errors) throw new Error(`${server.name}: ${result.errors} errors, ${result.non2xx} non-2xx`);
  return (after - before) / result.requests.total;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function main() {
  // nothing is uploaded (no session starts): the address only has to be valid
  const refused = http.createServer();
  await new Promise((resolve) => refused.listen(0, '127.0.0.1', resolve));
  const ingestUrl = `http://127.0.0.1:${refused.address().port}`;
  refused.close();
  const greet = compileGreetHandlers();
  const idle = await start('A', CONFIG_A, greet.routesJs, ingestUrl);
  const heap = await start('B', CONFIG_B, greet.routesJs, ingestUrl);
  try {
    // warm-up: both servers' code optimized before anything is measured
    await cpuPerRequest(idle);
    await cpuPerRequest(heap);
    const ratios = [];
    const perRequest = { A: [], B: [] };
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? [idle, heap] : [heap, idle];
      const figures = {};
      for (const server of order) figures[server.name] = await cpuPerRequest(server);
      perRequest.A.push(figures.A);
      perRequest.B.push(figures.B);
      ratios.push(figures.B / figures.A);
      console.log(`round ${round + 1}: ${CONFIG_A} ${figures.A.toFixed(1)} µs, ${CONFIG_B} ${figures.B.toFixed(1)} µs, ratio ${ratios.at(-1).toFixed(3)}`);
    }
    const sessions = (await heap.ask('stats')).profiler.sessions;
    console.log(
      `Node ${process.version}, ${ROUNDS} paired rounds of ${REQUESTS} requests: ` +
        `${CONFIG_A} ${median(perRequest.A).toFixed(1)} µs/request, ${CONFIG_B} ${median(perRequest.B).toFixed(1)} µs/request, ` +
        `median ratio ${CONFIG_B}/${CONFIG_A} ${median(ratios).toFixed(3)} (min ${Math.min(...ratios).toFixed(3)}, max ${Math.max(...ratios).toFixed(3)}); sessions started: ${sessions}`,
    );
  } finally {
    await Promise.all([idle.ask('close'), heap.ask('close')]);
    greet.cleanup();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
