/**
 * Issue 18, bounds and safety: worker threads that misbehave never hurt the main thread. Real
 * `worker_threads` Workers (CommonJS fixture, the built entry point) next to a real plugin
 * instance: one exits mid-session, one is terminated, one throws at start, one cannot start its
 * engine, one blocks for 10 s; the sessions sample CPU and heap, so both kinds of waits meet
 * them. No crash, no unhandled rejection, close() within flushTimeout, counts in stats().
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { Worker } from 'node:worker_threads';
import Fastify, { type FastifyInstance } from 'fastify';
import { Profile } from 'pprof-format';
import plugin from '../src/index';
import { sleep, until } from './helpers/wait';

const WORKER_FILE = path.join(__dirname, 'fixtures', 'workers', 'plain-worker.js');
const TERMINATE_CHILD = path.join(__dirname, 'fixtures', 'workers', 'terminate-child.js');
const FLUSH_TIMEOUT_MS = 2_000;
/** What close() may take beyond flushTimeout: the controller's own 250 ms plus a loaded machine. */
const CLOSE_MARGIN_MS = 1_500;

function runChild(file: string, args: string[]): Promise<{ stdout: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ stdout, code }));
  });
}

function nextMessage(worker: Worker, expected: string): Promise<void> {
  return new Promise((resolve) => {
    const listener = (message: unknown): void => {
      if (message !== expected) return;
      worker.off('message', listener);
      resolve();
    };
    worker.on('message', listener);
  });
}

/** Samples (by `samples` count) whose stack holds `fn`, by `thread` and `route` label. */
function samplesOf(dir: string, fn: string): { total: number; byLabels: Record<string, number> } {
  const out = { total: 0, byLabels: {} as Record<string, number> };
  for (const file of fs.readdirSync(dir).filter((f) => f.includes('.cpu.'))) {
    const profile = Profile.decode(zlib.gunzipSync(fs.readFileSync(path.join(dir, file))));
    const strings = profile.stringTable.strings;
    const fnIds = new Set(profile.function.filter((f) => strings[Number(f.name)] === fn).map((f) => Number(f.id)));
    const locIds = new Set(profile.location.filter((l) => l.line.some((line) => fnIds.has(Number(line.functionId)))).map((l) => Number(l.id)));
    for (const sample of profile.sample) {
      if (!sample.locationId.some((id) => locIds.has(Number(id)))) continue;
      const label = (key: string): string => strings[Number(sample.label.find((l) => strings[Number(l.key)] === key)?.str ?? 0)] ?? '';
      const key = `thread=${label('thread')},route=${label('route')}`;
      const weight = Number(sample.value[0]);
      out.total += weight;
      out.byLabels[key] = (out.byLabels[key] ?? 0) + weight;
    }
  }
  return out;
}

describe('worker threads that misbehave', () => {
  let dir: string;
  let app: FastifyInstance | undefined;
  const workers: Worker[] = [];
  const unhandled: unknown[] = [];
  const workerErrors: Error[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };

  beforeAll(() => process.on('unhandledRejection', onUnhandled));
  afterAll(() => process.off('unhandledRejection', onUnhandled));

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcp-workers-safety-'));
    app = Fastify();
    await app.register(plugin, { appName: 'safety', outputDir: dir, cpuThreshold: 0, uploadRate: '1s', flushTimeout: FLUSH_TIMEOUT_MS, profileTypes: { cpu: true, wall: false, heap: true } });
    await app.ready();
  });

  afterEach(async () => {
    await app?.close();
    await Promise.all(workers.splice(0).map((w) => w.terminate()));
    fs.rmSync(dir, { recursive: true, force: true });
    expect(unhandled).toEqual([]);
  });

  function spawn(behavior: string): Worker {
    const worker = new Worker(WORKER_FILE, { workerData: { behavior, labels: { route: `/${behavior}`, method: 'POST' } } });
    worker.on('error', (error) => workerErrors.push(error));
    workers.push(worker);
    return worker;
  }

  const workerStats = () => app!.profiler.stats().workers!;

  test('a worker that exits mid-session hands over what it sampled since the last window', async () => {
    const worker = spawn('exit');
    await nextMessage(worker, 'ready');
    await until('the worker to join', () => workerStats().workers === 1);
    // Its engine starts when it hears the session's start, on the channel; 'go' comes on its port,
    // and two ports keep no order between them (a loaded run burned before the start: 0 samples).
    // Two windows' cuts follow the start on the same channel: once they are over, it heard it.
    const windows = app!.profiler.stats().windows;
    await until('two windows after the join', () => app!.profiler.stats().windows >= windows + 2);
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.postMessage('go');
    expect(await exited).toBe(0);
    await until('the worker to leave', () => workerStats().workersLeft === 1);
    await app!.close();

    const burn = samplesOf(dir, 'burnBeforeExit');
    // 1.5 s at 100 Hz, on a shared machine: well over a window's worth, all of it labelled
    expect(burn.total).toBeGreaterThanOrEqual(30);
    expect(burn.byLabels).toEqual({ 'thread=exit,route=/exit': burn.total });
    expect(workerStats()).toMatchObject({ workers: 0, workersJoined: 1, workersLeft: 1, workerPiecesDropped: 0 });
    // it said goodbye before its exit: nothing was lost
    await sleep(1200);
    expect(workerStats()).toMatchObject({ workersLost: 0, workerPiecesLost: 0 });
  });

  test('a worker terminated mid-session: its unsent piece is counted lost and its slot freed at once', async () => {
    // in a child process of its own: only a Worker's creator hears its exit, through
    // process.on('worker'), which Jest's sandboxed process never emits
    const { stdout, code } = await runChild(TERMINATE_CHILD, [dir]);
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { counted: boolean; countedAfterMs: number; before: Record<string, number>; after: Record<string, number> };
    // eslint-disable-next-line no-console
    console.log(`terminated worker: loss counted after ${result.countedAfterMs} ms; ${JSON.stringify(result.after)}`);
    expect(code).toBe(0);
    expect(result.counted).toBe(true);
    expect(result.before).toMatchObject({ workers: 1, workerPiecesLost: 0 });
    // a terminated thread runs none of its code on the way out: no leave, the loss is counted
    expect(result.after).toMatchObject({ workers: 0, workersJoined: 1, workersLeft: 0, workersLost: 1, workerPiecesLost: 1 });
    // what it handed over before (pieces of the windows it answered) is there, labelled
    const burn = samplesOf(dir, 'burnPlainTask');
    expect(burn.total).toBeGreaterThanOrEqual(20);
    expect(Object.keys(burn.byLabels)).toEqual([expect.stringMatching(/^thread=worker-\d+,route=\/terminated$/)]);
  });

  test('a worker that throws at start ends alone; the app and its sessions go on', async () => {
    const worker = spawn('throw');
    const exitCode = await new Promise((resolve) => worker.once('exit', resolve));
    expect(exitCode).toBe(1);
    expect(workerErrors.map((e) => e.message)).toContain('worker failed at start');
    await sleep(1500); // a window or so
    const stats = app!.profiler.stats();
    expect(stats.state).toBe('profiling');
    expect(stats.engineErrors).toBe(0);
    // it joined before throwing; the exit handler still said goodbye
    expect(stats.workers).toMatchObject({ workers: 0, workersJoined: 1, workersLeft: 1 });
  });

  test('a worker whose engine cannot start is left out and counted', async () => {
    const worker = spawn('engine-taken');
    await nextMessage(worker, 'ready');
    await until('the failed start to be reported', () => workerStats().workerStartFailures === 1);
    worker.postMessage('go');
    await nextMessage(worker, 'done'); // the worker itself is unharmed
    await sleep(1500);
    expect(app!.profiler.stats().engineErrors).toBe(0);
    // a window did not wait for it in vain: it answers every cut, with nothing
    expect(workerStats()).toMatchObject({ workers: 1, workerStartFailures: 1, workerPiecesDropped: 0 });
  });

  test('a worker blocked for 10 s: windows go without it, close() returns within flushTimeout', async () => {
    const worker = spawn('block');
    await nextMessage(worker, 'ready');
    await until('the worker to join', () => workerStats().workers === 1);
    await sleep(300);
    worker.postMessage('go');
    await nextMessage(worker, 'blocking');
    const windowsBefore = app!.profiler.stats().windows;
    await sleep(3500);
    const during = app!.profiler.stats();
    // the main thread kept its cadence (one window a second, each waiting at most 1 s once)
    expect(during.windows - windowsBefore).toBeGreaterThanOrEqual(2);
    expect(during.workers!.workerCutsMissed).toBeGreaterThanOrEqual(1);

    const started = performance.now();
    await app!.close();
    const closeMs = performance.now() - started;
    // eslint-disable-next-line no-console
    console.log(`close() with a worker blocked: ${closeMs.toFixed(0)} ms (flushTimeout ${FLUSH_TIMEOUT_MS} ms)`);
    expect(closeMs).toBeLessThan(FLUSH_TIMEOUT_MS + CLOSE_MARGIN_MS);
    expect(app!.profiler.stats().state).toBe('closed');
  });
});
