'use strict';
/**
 * Diagnosis (issue 19, not part of `npm run bench`): instructions per request of bench/server.js
 * configurations under a paced load, counted by valgrind's callgrind (a count does not move with
 * what else the machine runs, unlike CPU time). Each run starts one server under callgrind with
 * instrumentation off, warms it up natively paced, then counts (`callgrind_control -i on/off`)
 * over N requests of the realistic `/orders` at RATE per second; the count covers every thread
 * and everything the server did in that stretch (timers, windows, the sampler), divided by N.
 * Configurations alternate, REPEATS times. The servers sample at 2 Hz (`engine-2hz`,
 * `continuous-2hz`): under valgrind they run about 50 times slower, and a 100 Hz wall-clock sampler
 * would take 50 times the samples per request that it takes natively. No TypeScript preload.
 *
 *   npm run build && node bench/own-cost-instructions.js [N] [RATE] [REPEATS] [CONFIGS]   (default 400 20 2 engine-2hz,continuous-2hz)
 *
 * Needs valgrind (callgrind_control); one server at a time, about 50 s per run.
 */
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { compileGreetHandlers } = require('./greet');
const { IngestStandIn } = require('./ingest');

const [nArg = '400', rateArg = '20', repeatsArg = '2', configsArg = 'engine-2hz,continuous-2hz'] = process.argv.slice(2);
const N = Number(nArg);
const RATE = Number(rateArg);
const REPEATS = Number(repeatsArg);
const CONFIGS = configsArg.split(',');
const REQUEST = Buffer.from('GET /orders?limit=50&offset=100&status=open HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');

/** `amount` requests at `rate` per second over one keep-alive connection (pipelined when late). */
function paced(port, rate, amount) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const t0 = performance.now();
    let answered = 0;
    let issued = 0;
    socket.on('data', (chunk) => {
      for (let at = chunk.indexOf('HTTP/1.1 '); at !== -1; at = chunk.indexOf('HTTP/1.1 ', at + 9)) answered++;
      if (answered >= amount) {
        socket.destroy();
        resolve((performance.now() - t0) / 1000);
      }
    });
    socket.on('error', reject);
    const tick = () => {
      const due = Math.min(amount, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
      for (; issued < due; issued++) socket.write(REQUEST);
      if (issued < amount) setTimeout(tick, 2);
    };
    tick();
  });
}

async function countOne(config, ingestUrl, routesJs) {
  const out = path.join(os.tmpdir(), `own-cost-callgrind-${process.pid}-${config}`);
  const args = ['--tool=callgrind', '--smc-check=all-non-file', '--instr-atstart=no', `--callgrind-out-file=${out}`, process.execPath, path.join(__dirname, 'server.js'), config, ingestUrl, routesJs, '15s'];
  const child = spawn('valgrind', args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { ...process.env, BENCH_SERVER_PRELOAD: '' } });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    const listening = await new Promise((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => reject(new Error(`${config} exited (${code}): ${stderr}`)));
    });
    await paced(listening.port, 20, 200); // warm-up: JIT, route caches
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const control = (...a) => execFileSync('callgrind_control', [...a, String(child.pid)], { stdio: 'ignore' });
    control('-i', 'on');
    const seconds = await paced(listening.port, RATE, N);
    control('-i', 'off');
    control('-d');
    child.send({ type: 'close' });
    await exited;
    let instructions = 0;
    for (const file of fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(path.basename(out)))) {
      const full = path.join(os.tmpdir(), file);
      const totals = /^totals: (\d+)/m.exec(fs.readFileSync(full, 'utf8'));
      if (totals) instructions += Number(totals[1]);
      fs.rmSync(full, { force: true });
    }
    return { instructions, seconds };
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

async function main() {
  const ingest = new IngestStandIn();
  const ingestUrl = await ingest.listen();
  const greet = compileGreetHandlers();
  const perRequest = Object.fromEntries(CONFIGS.map((c) => [c, []]));
  try {
    for (let r = 0; r < REPEATS; r++) {
      for (const config of CONFIGS) {
        const { instructions, seconds } = await countOne(config, ingestUrl, greet.routesJs);
        perRequest[config].push(instructions / N);
        console.log(`${config}: ${N} requests in ${seconds.toFixed(1)} s, ${(instructions / N / 1000).toFixed(1)} k instructions per request`);
      }
    }
  } finally {
    greet.cleanup();
    await ingest.close();
  }
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const base = mean(perRequest[CONFIGS[0]]);
  for (const config of CONFIGS) {
    const m = mean(perRequest[config]);
    console.log(`${config.padEnd(20)} mean ${(m / 1000).toFixed(1)} k per request (${perRequest[config].map((x) => (x / 1000).toFixed(1)).join(', ')}), ${(((m - base) / base) * 100).toFixed(1)} % over ${CONFIGS[0]}`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
