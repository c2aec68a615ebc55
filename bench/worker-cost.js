'use strict';
/**
 * What a worker thread taking part in profiling costs (issue 18), side by side with one that
 * does not. Needs `npm run build` (the worker entry point is loaded from dist/).
 *
 *   node bench/worker-cost.js
 *
 * 1. CPU per task: a Fastify app with the plugin (continuous session, 4 s windows) sends tasks to
 *    a piscina pool of 2 threads, 8 in flight; each task is `work(n)` (~1 ms). A participating
 *    worker cuts its engine at least every quarter window (each cut: the samples since the last),
 *    so shorter windows cost more; 4 s keeps a round of 6,000 tasks over several windows. Baseline: the
 *    same app and pool, the worker file without profileWorker/withTaskLabels and the route
 *    without taskLabels(). A third configuration, `engine`, starts @datadog/pprof's time profiler
 *    in each worker by itself (as the worker's engine runs: 100 Hz, CPU time, contexts) and
 *    nothing else: what the engine alone costs, the floor under ours. Each configuration runs in
 *    its own process (one profiler per process), in turn, ROUNDS times; the figure is process
 *    CPU (all threads) per task.
 * 2. The worker's own blocks: profileWorker() itself, its engine's start (at each session start)
 *    and a cut (each answered cut, and each unasked piece: every quarter window).
 *    And a heap snapshot (read, label, encode: each window's ask, and at most every quarter
 *    window at a task's end) with ~27 MB live at the default 512 KiB sampling.
 * 3. What the main thread pays per window for the workers: decoding their pieces (as each
 *    arrives) and merging them with its own (one block), 15 s windows of a busy worker at
 *    100 Hz (5 pieces of 3 s), for 1, 4 and 16 workers; and their heap snapshots, decoded and
 *    merged with its own.
 */
const { fork } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Worker, isMainThread, parentPort } = require('node:worker_threads');

const ROOT = path.resolve(__dirname, '..');
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const TASKS = Number(process.env.TASKS ?? 6000);
const TASK_N = 600_000;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const spread = (xs) => `${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)}`;

/** Child: one configuration, one round; prints CPU µs per task. */
async function child(mode) {
  const Fastify = require('fastify');
  const Piscina = require('piscina');
  const plugin = require(path.join(ROOT, 'dist', 'index.js'));
  const profiled = mode === 'profiled';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcp-worker-cost-'));
  const pool = new Piscina({ filename: path.join(__dirname, 'workers', `task-${mode}.js`), minThreads: 2, maxThreads: 2 });
  const app = Fastify();
  await app.register(plugin, { appName: 'bench', outputDir: dir, cpuThreshold: 0, uploadRate: '4s', maxWorkers: profiled ? 16 : 0 });
  app.get('/task', async () => ({ x: await pool.run({ n: TASK_N, labels: profiled ? app.profiler.taskLabels() : undefined }) }));
  await app.ready();
  const batch = async (count) => {
    for (let done = 0; done < count; done += 8) await Promise.all(Array.from({ length: 8 }, () => app.inject({ url: '/task' })));
  };
  await batch(400); // warm-up: the workers join and start their engines
  const before = process.cpuUsage();
  await batch(TASKS);
  const used = process.cpuUsage(before);
  const stats = app.profiler.stats();
  await app.close();
  void pool.destroy();
  fs.rmSync(dir, { recursive: true, force: true });
  process.send({ usPerTask: (used.user + used.system) / TASKS, workers: stats.workers?.workers ?? 0 });
}

function runChild(mode) {
  return new Promise((resolve, reject) => {
    const c = fork(__filename, ['child', mode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    c.once('message', resolve);
    c.once('exit', (code) => code !== 0 && reject(new Error(`child ${mode} exited ${code}`)));
  });
}

/** Worker: the blocks of one participating worker, measured inside it. */
function blocksInWorker() {
  const { TimeProfiler } = require(path.join(ROOT, 'dist', 'profilers', 'time.js'));
  const { WorkerLabels } = require(path.join(ROOT, 'dist', 'workers', 'task-labels.js'));
  const { work } = require('./workers/work');
  let t = performance.now();
  require('fastify-continuous-profiling/worker').profileWorker({ name: 'bench' });
  const joinMs = performance.now() - t;
  const labels = new WorkerLabels('bench', { maxLabelValues: 1000, maxLabelsPerSample: 10 });
  const engine = new TimeProfiler({ sampleRate: 100, cpu: true, wall: true, windowMs: 15_000, labeler: labels });
  t = performance.now();
  engine.start();
  const startMs = performance.now() - t;
  const end = Date.now() + 3000;
  while (Date.now() < end) labels.run({ route: '/bench', method: 'GET' }, () => work(TASK_N));
  const { mergeIdenticalSamples } = require(path.join(ROOT, 'dist', 'profilers', 'transform.js'));
  t = performance.now();
  const raw = engine.collectRaw();
  const cutMs = performance.now() - t;
  t = performance.now();
  const rawSamples = raw.sample.length;
  mergeIdenticalSamples(raw); // what the worker does before sending (worker.ts, encodePiece)
  const piece = raw.encode();
  const encodeMs = performance.now() - t;
  engine.stopRaw();
  const heap = heapSnapshotCost();
  parentPort.postMessage({ joinMs, startMs, cutMs, encodeMs, rawSamples, samples: raw.sample.length, piece, ...heap });
}

/** Inside the worker: a heap snapshot answer, as worker-heap.ts gives it, with ~27 MB live. */
function heapSnapshotCost() {
  const { WorkerHeap } = require(path.join(ROOT, 'dist', 'workers', 'worker-heap.js'));
  const sent = [];
  const heap = new WorkerHeap('bench', (message) => sent.push(message));
  heap.handle({ kind: 'heap-start', holder: 1, refused: [], settings: { intervalBytes: 524_288, windowMs: 15_000, frameColumns: false } });
  const kept = [];
  for (let i = 0; i < 50_000; i++) kept.push(new Array(64).fill(i));
  const times = [];
  for (let ask = 1; ask <= 11; ask++) {
    const t = performance.now();
    heap.handle({ kind: 'heap-ask', ask });
    times.push(performance.now() - t);
  }
  heap.stop();
  return { heapSnapshotMs: median(times), heapPiece: sent.at(-1).profile, kept: kept.length };
}

async function blocks() {
  const worker = new Worker(__filename);
  const result = await new Promise((resolve) => worker.once('message', resolve));
  await worker.terminate();
  return result;
}

/** Main: decode + merge N copies of a 3 s busy worker piece (scaled: 5x for a 15 s window), and N heap snapshots. */
function mergeCost(pieceBytes, heapBytes) {
  const { Profile } = require('pprof-format');
  const { mergeHeapSnapshots, mergeThreadPieces } = require(path.join(ROOT, 'dist', 'profilers', 'threads.js'));
  const mainPiece = Profile.decode(pieceBytes);
  const out = {};
  for (const n of [1, 4, 16]) {
    const decodes = [];
    const merges = [];
    for (let k = 0; k < 5; k++) {
      let t = performance.now();
      const pieces = Array.from({ length: n * 5 }, () => Profile.decode(pieceBytes));
      decodes.push(performance.now() - t);
      t = performance.now();
      mergeThreadPieces([mainPiece], pieces, { name: 'thread', value: 'main' });
      merges.push(performance.now() - t);
    }
    const heaps = [];
    for (let k = 0; k < 5; k++) {
      const t = performance.now();
      const snapshots = Array.from({ length: n }, () => Profile.decode(heapBytes));
      mergeHeapSnapshots({ kind: 'heap', profile: Profile.decode(heapBytes), foldedSamples: 0 }, snapshots, { name: 'thread', value: 'main' });
      heaps.push(performance.now() - t);
    }
    out[n] = { decode: median(decodes), merge: median(merges), heap: median(heaps) };
  }
  return out;
}

async function main() {
  const modes = ['plain', 'engine', 'profiled'];
  const results = { plain: [], engine: [], profiled: [] };
  for (let r = 0; r < ROUNDS; r++) {
    // each round starts with another configuration
    for (const mode of [...modes.slice(r % 3), ...modes.slice(0, r % 3)]) {
      const { usPerTask, workers } = await runChild(mode);
      if (mode === 'profiled' && workers !== 2) throw new Error(`expected 2 participating workers, got ${workers}`);
      results[mode].push(usPerTask);
    }
  }
  const ratio = (mode) => results[mode].map((p, i) => p / results.plain[i]);
  const ratioText = (xs) => `median ${median(xs).toFixed(3)} (${Math.min(...xs).toFixed(3)}-${Math.max(...xs).toFixed(3)})`;
  console.log(`Node ${process.version}, ${ROUNDS} rounds of ${TASKS} tasks (~${TASK_N / 1e6}M iterations each), 2 pool threads`);
  console.log(`  CPU per task, all threads: ${modes.map((m) => `${m} ${median(results[m]).toFixed(1)} µs (${spread(results[m])})`).join(', ')}`);
  console.log(`  per round, over plain: engine alone ${ratioText(ratio('engine'))}, taking part ${ratioText(ratio('profiled'))}`);
  const b = await blocks();
  console.log(`  worker blocks: profileWorker() ${b.joinMs.toFixed(2)} ms, engine start ${b.startMs.toFixed(2)} ms, one cut of 3 s busy ${b.cutMs.toFixed(2)} ms + summing and encoding ${b.encodeMs.toFixed(2)} ms (${b.rawSamples} samples -> ${b.samples}, ${(b.piece.length / 1024).toFixed(1)} KiB); a heap snapshot ${b.heapSnapshotMs.toFixed(2)} ms (${(b.heapPiece.length / 1024).toFixed(1)} KiB, ${b.kept} arrays live)`);
  const m = mergeCost(Buffer.from(b.piece), Buffer.from(b.heapPiece));
  const cost = (n) => `${n} worker${n === 1 ? '' : 's'} ${m[n].decode.toFixed(1)} ms decoding (piece by piece, as they arrive) + ${m[n].merge.toFixed(1)} ms merging (one block) + heap ${m[n].heap.toFixed(1)} ms`;
  console.log(`  main thread per 15 s window: ${[1, 4, 16].map(cost).join('; ')}`);
}

if (!isMainThread) blocksInWorker();
else if (process.argv[2] === 'child') child(process.argv[3]).catch((error) => {
  console.error(error);
  process.exit(1);
});
else main().catch((error) => {
  console.error(error);
  process.exit(1);
});
