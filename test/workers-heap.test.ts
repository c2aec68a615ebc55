/**
 * Issue 18, heap: each worker thread's heap sampler runs while the main thread's does, and its
 * snapshot joins the main thread's in one heap profile per window, `thread` on every sample.
 * Real piscina (ESM worker file) and plain worker_threads workers (CommonJS), through the built
 * entry point; the heap profiles written to disk (and captured) are decoded and what each
 * thread keeps alive is checked against what the fixture retained.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { Worker } from 'node:worker_threads';
import Fastify, { type FastifyInstance } from 'fastify';
import Piscina from 'piscina';
import { Profile } from 'pprof-format';
import plugin from '../src/index';
import { buildHeapReport } from '../src/report/heap-input';
import { formatTable } from '../src/report/table';
import { sleep, until } from './helpers/wait';

const HEAP_WORKER_FILE = path.join(__dirname, 'fixtures', 'workers', 'heap-worker.mjs');
const PLAIN_WORKER_FILE = path.join(__dirname, 'fixtures', 'workers', 'plain-worker.js');
/** Small enough that a few MiB give hundreds of samples (the estimate's error is then a few %). */
const SAMPLING_BYTES = 16 * 1024;
const KIB = 1024;
/** Each retained record is an array of 128 small integers: 128 x 8 bytes of elements, plus headers. */
const RECORD_BYTES_AT_LEAST = 1024;

/** In-use bytes of the samples whose stack holds `fn`, by `thread` label. */
function liveBytesOf(profile: Profile, fn: string): Record<string, number> {
  const strings = profile.stringTable.strings;
  const space = profile.sampleType.findIndex((t) => strings[Number(t.type)] === 'inuse_space');
  const fnIds = new Set(profile.function.filter((f) => strings[Number(f.name)] === fn).map((f) => Number(f.id)));
  const locIds = new Set(profile.location.filter((l) => l.line.some((line) => fnIds.has(Number(line.functionId)))).map((l) => Number(l.id)));
  const out: Record<string, number> = {};
  for (const sample of profile.sample) {
    if (!sample.locationId.some((id) => locIds.has(Number(id)))) continue;
    const thread = sample.label.find((l) => strings[Number(l.key)] === 'thread');
    const key = thread === undefined ? '(none)' : strings[Number(thread.str)]!;
    out[key] = (out[key] ?? 0) + Number(sample.value[space]);
  }
  return out;
}

/** The thread labels of a profile's samples, with how many samples carry each. */
function threadsOf(profile: Profile): Record<string, number> {
  const strings = profile.stringTable.strings;
  const out: Record<string, number> = {};
  for (const sample of profile.sample) {
    const thread = sample.label.find((l) => strings[Number(l.key)] === 'thread');
    const key = thread === undefined ? '(none)' : strings[Number(thread.str)]!;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

/** The heap profiles written to `dir`, oldest first. */
function heapFiles(dir: string): Profile[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.includes('.heap.') && f.endsWith('.pb.gz'))
    .sort()
    .map((f) => Profile.decode(zlib.gunzipSync(fs.readFileSync(path.join(dir, f)))));
}

function retainInMainThread(kib: number, kept: unknown[]): void {
  for (let i = 0; i < kib; i++) kept.push(new Array(128).fill(i));
}

describe('worker threads: heap profiles', () => {
  let dir: string;
  let app: FastifyInstance | undefined;
  let pool: Piscina | undefined;
  const workers: Worker[] = [];

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcp-workers-heap-'));
  });

  afterEach(async () => {
    await app?.close();
    await pool?.destroy();
    await Promise.all(workers.splice(0).map((w) => w.terminate()));
    app = pool = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('piscina: what the pool keeps shows in the heap profile as thread=pool, the main thread\'s as thread=main', async () => {
    pool = new Piscina({ filename: HEAP_WORKER_FILE, minThreads: 2, maxThreads: 2 });
    app = Fastify();
    // heap only: no time session, the heap sampler alone drives the workers'
    await app.register(plugin, { appName: 'heap', outputDir: dir, cpuThreshold: 0, uploadRate: '1s', heapSamplingInterval: SAMPLING_BYTES, profileTypes: { cpu: false, wall: false, heap: true } });
    const mainKept: unknown[] = [];
    app.get('/keep', async () => ({ n: await pool!.run({ kind: 'retain', labels: app!.profiler.taskLabels(), kib: 16 }) }));
    app.get('/main-keep', async () => {
      retainInMainThread(16, mainKept);
      return { n: mainKept.length };
    });
    app.get('/noop', async () => ({ n: await pool!.run({ kind: 'noop' }) }));
    await app.ready();
    // idle piscina threads hear the plugin only when a task wakes them: join, then the heap start
    for (let i = 0; i < 200 && app.profiler.stats().workers?.workers !== 2; i++) {
      await Promise.all(Array.from({ length: 8 }, () => app!.inject({ url: '/noop' })));
      await sleep(20);
    }
    expect(app.profiler.stats().workers?.workers).toBe(2);
    await Promise.all(Array.from({ length: 8 }, () => app!.inject({ url: '/noop' }))); // each thread starts its sampler at a task's start

    // 256 tasks of 16 KiB: 4 MiB kept by the pool; 2 MiB by the main thread
    for (let round = 0; round < 16; round++) await Promise.all(Array.from({ length: 16 }, () => app!.inject({ url: '/keep' })));
    for (let i = 0; i < 128; i++) await app.inject({ url: '/main-keep' });
    // a task that ends with the thread's last snapshot a quarter window old sends a fresh one
    await sleep(400);
    await Promise.all(Array.from({ length: 8 }, () => app!.inject({ url: '/noop' })));
    // two windows with the pool asleep in Atomics.wait: neither thread can answer their asks
    const windows = app.profiler.stats().windows;
    await until('two idle windows', () => app!.profiler.stats().windows >= windows + 2);
    const stats = app.profiler.stats().workers!;
    await app.close();

    const profiles = heapFiles(dir);
    const last = profiles.at(-1)!;
    const pool4MiB = liveBytesOf(last, 'retainInPoolWorker');
    const main2MiB = liveBytesOf(last, 'retainInMainThread');
    // eslint-disable-next-line no-console
    console.log(JSON.stringify({ node: process.version, files: profiles.length, windows: app.profiler.stats().windows, pool: pool4MiB, main: main2MiB, threads: threadsOf(last), stats }));
    const poolBytes = 256 * 16 * KIB * (RECORD_BYTES_AT_LEAST / KIB);
    expect(Object.keys(pool4MiB)).toEqual(['pool']);
    expect(pool4MiB.pool).toBeGreaterThan(poolBytes * 0.7);
    expect(pool4MiB.pool).toBeLessThan(poolBytes * 2);
    expect(Object.keys(main2MiB)).toEqual(['main']);
    expect(main2MiB.main).toBeGreaterThan((poolBytes / 2) * 0.7);
    // every sample names its thread once a worker took part
    expect(Object.keys(threadsOf(last)).sort()).toEqual(['main', 'pool']);
    // so those windows took each thread's latest snapshot (sent as its last task ended), and said so
    expect(stats.workerHeapsEarlier).toBeGreaterThanOrEqual(2);
    expect(stats.workerHeapsMissing).toBe(0);
    expect(stats).toMatchObject({ workers: 2, workerPiecesDropped: 0, workerStartFailures: 0 });

    // the report's heap view splits what is live by thread, as its CPU view does
    const report = buildHeapReport({ profile: last, source: 'last', appName: 'heap', timeMs: undefined, order: 0 }, 0, {});
    const threadTotals = Object.fromEntries(report.threads!.map((t) => [t.thread, t.total]));
    // the pool's row holds at least what it keeps (the main thread's row depends on what else
    // this process holds: other test files run in it too)
    expect(Object.keys(threadTotals).sort()).toEqual(['main', 'pool']);
    expect(threadTotals.pool).toBeGreaterThanOrEqual(pool4MiB.pool!);
    expect(formatTable(report)).toMatch(/\npool +[\d.]+ [KM]i?B +\d+\.\d%/);
  });

  test('plain workers answer every window; capture({ type: "heap" }) includes them; a worker that leaves takes its heap with it', async () => {
    app = Fastify();
    await app.register(plugin, { appName: 'heap', outputDir: dir, cpuThreshold: 0, uploadRate: '1s', heapSamplingInterval: SAMPLING_BYTES, profileTypes: { cpu: true, wall: false, heap: true } });
    await app.ready();
    const worker = new Worker(PLAIN_WORKER_FILE, { workerData: { behavior: 'task' } });
    workers.push(worker);
    await new Promise((resolve) => worker.once('message', resolve)); // ready
    await until('the worker to join', () => app!.profiler.stats().workers?.workers === 1);
    await sleep(300); // it hears the heap start on its event loop
    const ask = (message: object): Promise<unknown> =>
      new Promise((resolve) => {
        worker.once('message', resolve);
        worker.postMessage(message);
      });
    for (let i = 0; i < 64; i++) await ask({ retainKiB: 32, labels: { route: '/plain' } }); // 2 MiB
    await sleep(1500); // a window or so

    const captured = Profile.decode(zlib.gunzipSync(await app.profiler.capture({ type: 'heap' })));
    const inCapture = liveBytesOf(captured, 'retainInPlainWorker');
    const name = Object.keys(inCapture)[0]!;
    expect(name).toMatch(/^worker-\d+$/);
    expect(inCapture[name]).toBeGreaterThan(2 * 1024 * 1024 * 0.7 * (RECORD_BYTES_AT_LEAST / KIB));
    expect(Object.keys(threadsOf(captured))).toContain('main');

    const during = app.profiler.stats().workers!;
    // an event loop that turns answers each ask in time: no window used an older snapshot
    expect(during).toMatchObject({ workers: 1, workerHeapsEarlier: 0, workerHeapsMissing: 0 });
    const lastWithWorker = heapFiles(dir).at(-1)!;
    expect(Object.keys(liveBytesOf(lastWithWorker, 'retainInPlainWorker'))).toEqual([name]);

    // it leaves (its script ends): its heap is gone, and so it is from the next windows
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.postMessage('exit-now');
    await exited;
    await until('the worker to leave', () => app!.profiler.stats().workers?.workersLeft === 1);
    const filesBefore = heapFiles(dir).length;
    await until('a window after the leave', () => heapFiles(dir).length >= filesBefore + 2);
    await app.close();
    const after = heapFiles(dir).at(-1)!;
    expect(liveBytesOf(after, 'retainInPlainWorker')).toEqual({});
    expect(Object.keys(threadsOf(after))).toEqual(['main']);
  });
});
