'use strict';
/**
 * Side benchmark (issue 12): what span profiles cost per request. Two servers, identical but
 * for the plugin's `spanProfiles` option, both traced by the OpenTelemetry SDK
 * (NodeTracerProvider, instrumentation-http, every trace sampled, a batch span processor into an
 * exporter that drops spans) and both profiling continuously (cpuThreshold 0, file exporter).
 * In each round the runner loads `/hello` on each server in turn (order alternating) with
 * autocannon, and reads the server's own CPU time over its slice: CPU per request, and the
 * ratio on/off within the round (paired, so machine-wide noise of the round cancels out).
 *
 *   npm run build && node bench/spans-cost.js [rounds=8] [sliceSeconds=4] [connections=16]
 *
 * Prints per round and the median: CPU µs per request with spans off and on, the difference,
 * and the ratio. With SPANS_COST_HOLDER=1 a third server (spans off, plus a fresh engine context
 * holder entered per request) tells, on Node 24+, how much of the difference is that holder.
 */
const { fork } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');

// ------------------------------------------------------------------------------------------------
// Server (child process): argv = 'server', 'on' | 'off'

async function server(spans) {
  const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
  const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
  const { registerInstrumentations } = require('@opentelemetry/instrumentation');
  const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http');
  const dropAll = { export: (_spans, done) => done({ code: 0 }), shutdown: async () => undefined };
  const provider = new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(dropAll)] });
  provider.register();
  registerInstrumentations({ instrumentations: [new HttpInstrumentation()] });
  const Fastify = require('fastify');
  const outputDir = fs.mkdtempSync(path.join(os.tmpdir(), `spans-cost-${spans}-`));
  const app = Fastify({ logger: false });
  await app.register(require(path.join(ROOT, 'dist')), {
    appName: `spans-cost-${spans}`,
    outputDir,
    cpuThreshold: 0,
    uploadRate: '5s',
    spanProfiles: spans === 'on',
  });
  if (spans === 'holder') {
    // diagnosis: spans off, but every request enters the engine's context anew with a fresh
    // holder (what a span context costs on CPED), to tell that cost from the rest of the span work
    const { time } = require('@datadog/pprof');
    const labels = Object.freeze({ route: '/hello', method: 'GET' });
    app.addHook('onRequest', (_request, _reply, done) => {
      if (time.isStarted()) time.runWithContext(labels, done);
      else done();
    });
  }
  app.get('/hello', async () => ({ hello: 'world' }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  process.on('message', async (msg) => {
    if (msg === 'cpu') {
      const u = process.cpuUsage();
      process.send({ cpu: u.user + u.system, spans: app.profiler.stats().spanProfiles });
    } else if (msg === 'close') {
      await app.close();
      await provider.shutdown();
      fs.rmSync(outputDir, { recursive: true, force: true });
      process.send({ closed: true }, () => process.exit(0));
    }
  });
  process.send({ port: app.server.address().port });
}

// ------------------------------------------------------------------------------------------------
// Runner

function startServer(spans) {
  const child = fork(__filename, ['server', spans], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const queue = [];
  child.on('message', (m) => queue.shift()?.(m));
  const next = () => new Promise((resolve) => queue.push(resolve));
  const ask = (msg) => {
    const reply = next();
    child.send(msg);
    return reply;
  };
  return next().then(({ port }) => ({ spans, port, ask, child }));
}

async function slice(autocannon, srv, seconds, connections) {
  const before = (await srv.ask('cpu')).cpu;
  const result = await autocannon({ url: `http://127.0.0.1:${srv.port}/hello`, connections, duration: seconds });
  const after = await srv.ask('cpu');
  const requests = result.requests.total;
  return { usPerRequest: (after.cpu - before) / requests, requests, errors: result.errors + result.non2xx, spans: after.spans };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function run() {
  const [rounds = 8, seconds = 4, connections = 16] = process.argv.slice(2).map(Number);
  const autocannon = require('autocannon');
  const off = await startServer('off');
  const on = await startServer('on');
  // SPANS_COST_HOLDER=1 (CPED diagnosis): a third server, spans off plus a fresh engine context per request
  const holder = process.env.SPANS_COST_HOLDER === '1' ? await startServer('holder') : undefined;
  const servers = [off, on, ...(holder ? [holder] : [])];
  // warm-up: JIT, the first profiling window
  for (const srv of servers) await slice(autocannon, srv, 2, connections);
  const rows = [];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? servers : [...servers].reverse();
    const got = {};
    for (const srv of order) got[srv.spans] = await slice(autocannon, srv, seconds, connections);
    if (holder) {
      const h = got.holder.usPerRequest / got.off.usPerRequest;
      console.log(`round ${r + 1}: fresh engine holder per request, spans off: ${got.holder.usPerRequest.toFixed(2)} µs/req, ratio to off ${h.toFixed(3)}`);
      (run.holderRatios ??= []).push(h);
    }
    const row = { off: got.off.usPerRequest, on: got.on.usPerRequest, diff: got.on.usPerRequest - got.off.usPerRequest, ratio: got.on.usPerRequest / got.off.usPerRequest };
    rows.push(row);
    console.log(
      `round ${r + 1}: off ${row.off.toFixed(2)} µs/req (${got.off.requests} req)  on ${row.on.toFixed(2)} µs/req (${got.on.requests} req)  ` +
        `diff ${row.diff.toFixed(2)} µs  ratio ${row.ratio.toFixed(3)}  errors ${got.off.errors + got.on.errors}  labelled ${got.on.spans?.labelledRequests}`,
    );
  }
  console.log(
    `\nNode ${process.version}, ${rounds} rounds of ${seconds} s, ${connections} connections, /hello, OpenTelemetry SDK + instrumentation-http in both, continuous profiling:\n` +
      `median CPU per request: spans off ${median(rows.map((x) => x.off)).toFixed(2)} µs, on ${median(rows.map((x) => x.on)).toFixed(2)} µs; ` +
      `median paired difference ${median(rows.map((x) => x.diff)).toFixed(2)} µs, ratio ${median(rows.map((x) => x.ratio)).toFixed(3)} ` +
      `(range ${Math.min(...rows.map((x) => x.ratio)).toFixed(3)}-${Math.max(...rows.map((x) => x.ratio)).toFixed(3)})`,
  );
  if (run.holderRatios) console.log(`diagnosis: spans off + a fresh engine holder per request, median ratio to off ${median(run.holderRatios).toFixed(3)}`);
  for (const srv of servers) await srv.ask('close');
}

if (process.argv[2] === 'server') {
  server(process.argv[3]).catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else {
  run().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
