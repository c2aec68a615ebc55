/**
 * Triggers through the real plugin: a blocked event loop (Atomics.wait, no CPU) under light real
 * HTTP load, a saturated process with every trigger off, the cgroup memory limit, and the first
 * reading of a continuous session (issue 14, item 1). The heap trigger, which needs a process of
 * its own with a small heap, is in heap-trigger.test.ts.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import Fastify, { type FastifyInstance } from 'fastify';
import profilingPlugin from '../src';
import { EngineProfiler } from '../src/profilers';
import { EventLoopSignal, HeapSignal, MemorySignal, memoryAvailable, readCgroupMemoryLimit } from '../src/triggers';
import { IngestStandIn, selfValueByFunction } from './helpers/ingest-stand-in';
import { burnCpuFor, heapSamplerRunning, kindOfRequest, timeProfilerRunning } from './fixtures/host-safety-helpers';

const BLOCK_MS = 40;
const blocker = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the event loop without spending CPU, as a sync read of a slow disk would. */
function blockEventLoopWithAtomicsWait(ms: number): void {
  Atomics.wait(blocker, 0, 0, ms);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!condition() && Date.now() < end) await sleep(50);
  return condition();
}

async function blockingApp(ingest: IngestStandIn, options: Record<string, unknown>): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify({ logger: false });
  await app.register(profilingPlugin, {
    appName: 'triggers',
    serverAddress: ingest.url,
    checkInterval: '500ms',
    profilingDuration: '3s',
    uploadRate: '1s',
    flushTimeout: '2s',
    ...options,
  });
  app.get('/block', async () => {
    blockEventLoopWithAtomicsWait(BLOCK_MS);
    return { blocked: BLOCK_MS };
  });
  app.get('/hello', async () => ({ hello: 'world' }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

async function lightLoad(url: string, seconds: number): Promise<autocannon.Result> {
  return await autocannon({ url: `${url}/block`, connections: 2, duration: seconds });
}

// The CPU trigger reads the whole process (the test's own load and Jest's compiling count):
// in CI, 2 of about 15 runs saw a first reading of 1000 per mille while the loop was blocked,
// which starts a CPU session the no-session test does not expect (session 7 and 8 CI logs).
// A retry keeps the check; a failure that repeats still fails.
jest.retryTimes(2, { logErrorsBeforeRetry: true });

describe('event-loop trigger: a loop blocked in Atomics.wait, light real HTTP load', () => {
  let ingest: IngestStandIn;

  beforeAll(async () => {
    ingest = await IngestStandIn.start();
  });
  afterAll(async () => {
    await ingest.close();
  });

  it('with only cpuThreshold, no session starts (the blocked loop spends no CPU)', async () => {
    // 900, not a lower mark: the CPU trigger reads the whole process, and in CI (a cold Jest
    // worker on Node 20) something else in the test process once crossed 700 during this test;
    // the blocked loop itself reads near 0, so 900 keeps the point and leaves room for that.
    const { app, url } = await blockingApp(ingest, { cpuThreshold: 900 });
    try {
      const load = await lightLoad(url, 3);
      expect(load.errors).toBe(0);
      expect(load['2xx']).toBeGreaterThan(10);
      const stats = app.profiler.stats();
      // the loop was blocked most of the time, and the CPU trigger could not see it
      expect(stats.eventLoopUtilization).toBeGreaterThan(stats.cpuUsage);
      // on failure, the diff shows what started the session and how the CPU reading split
      expect({ sessions: stats.sessions, lastTrigger: stats.lastTrigger, split: stats.cpuUsageSplit }).toMatchObject({ sessions: 0, lastTrigger: undefined });
    } finally {
      await app.close();
    }
  });

  it('with eventLoopThreshold 800, a session starts, collects wall time, and the blocking function is on top of its route', async () => {
    ingest.clearRecorded();
    // wall is off in profileTypes: the event-loop session turns it on for itself
    const { app, url } = await blockingApp(ingest, { cpuThreshold: 700, eventLoopThreshold: 800, profileTypes: { cpu: true, wall: false, heap: false } });
    try {
      const load = lightLoad(url, 6);
      // keep the load going into the session so its windows hold the blocked route
      expect(await waitUntil(() => app.profiler.stats().sessions > 0, 5_000)).toBe(true);
      const stats = app.profiler.stats();
      expect(stats.lastTrigger).toMatchObject({ signal: 'eventLoop', threshold: 800 });
      expect(stats.lastTrigger!.value).toBeGreaterThanOrEqual(800);
      expect((await load).errors).toBe(0);
      await app.profiler.stop();
    } finally {
      await app.close();
    }
    const wall = ingest.uploads.filter((u) => kindOfRequest(u) === 'wall');
    expect(wall.length).toBeGreaterThan(0);
    const totals = new Map<string, number>();
    for (const { profile } of wall) {
      for (const [name, value] of selfValueByFunction(profile, 'wall', (labels) => labels.route === '/block')) {
        totals.set(name, (totals.get(name) ?? 0) + value);
      }
    }
    const top = [...totals].sort((a, b) => b[1] - a[1])[0]?.[0];
    expect(top).toBe('blockEventLoopWithAtomicsWait');
  });
});

describe('manual only: every trigger off', () => {
  it('a saturated process starts no session; start() still works and says so in lastTrigger', async () => {
    const ingest = await IngestStandIn.start();
    const app = Fastify({ logger: false });
    await app.register(profilingPlugin, {
      appName: 'manual-only',
      serverAddress: ingest.url,
      cpuThreshold: false,
      checkInterval: '200ms',
      uploadRate: '1s',
      profilingDuration: '2s',
      flushTimeout: '1s',
    });
    try {
      await app.ready();
      // saturate CPU and the event loop over several checks, letting the timers run in between
      const end = Date.now() + 2_000;
      while (Date.now() < end) {
        burnCpuFor(150);
        await new Promise((resolve) => setImmediate(resolve));
      }
      const stats = app.profiler.stats();
      expect(stats.cpuUsage).toBeGreaterThan(0); // the checks ran: the reading moved off 0
      expect(stats.eventLoopUtilization).toBeGreaterThan(0);
      expect(stats.sessions).toBe(0);
      expect(timeProfilerRunning()).toBe(false);
      expect(app.profiler.start({ reason: 'by hand' })).toBe(true);
      expect(app.profiler.stats().lastTrigger?.signal).toBe('manual');
      expect(timeProfilerRunning()).toBe(true);
      await app.profiler.stop();
    } finally {
      await app.close();
      await ingest.close();
    }
  });
});

describe('issue 14, item 1: a continuous session does not show start-up as the usage', () => {
  it('cpuUsage() right after ready() is not the start-up burst, and the first reading comes at +1 s', async () => {
    const dir = mkdtempSync(join(os.tmpdir(), 'fcp-continuous-'));
    const app = Fastify({ logger: false });
    await app.register(profilingPlugin, { appName: 'continuous', outputDir: dir, cpuThreshold: 0, profileTypes: { cpu: true, wall: false, heap: false } });
    try {
      // start-up work between registration and ready (module loading, route compilation)
      app.after(() => burnCpuFor(300));
      await app.ready();
      expect(app.profiler.state).toBe('profiling');
      // no reading yet: the first one covers +0..+1 s (it was the start-up burst, registration to
      // ready: 1000 ‰ on an idle machine, 445 ‰ measured on this shared one)
      expect(app.profiler.cpuUsage()).toBe(0);
      expect(app.profiler.stats().cpuUsage).toBe(app.profiler.cpuUsage());
      expect(app.profiler.stats().lastTrigger).toMatchObject({ signal: 'continuous', threshold: 0 });
      // some work in the first second: the check at +1 s (not at checkInterval, 10 s) reports it
      burnCpuFor(150);
      await sleep(1_300);
      const usage = app.profiler.cpuUsage();
      expect(usage).toBeGreaterThan(0);
      expect(usage).toBeLessThan(1000);
    } finally {
      await app.close();
    }
  });
});

describe('signals', () => {
  function cgroupRoot(files: Record<string, string>): string {
    const root = mkdtempSync(join(os.tmpdir(), 'fcp-cgroup-mem-'));
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(join(root, path, '..'), { recursive: true });
      writeFileSync(join(root, path), content);
    }
    return root;
  }
  const GiB = 1024 ** 3;

  it('memory: reads a cgroup v2 limit, and "max" as none', async () => {
    expect(await readCgroupMemoryLimit(cgroupRoot({ 'memory.max': '536870912\n' }), 16 * GiB)).toBe(512 * 1024 ** 2);
    expect(await readCgroupMemoryLimit(cgroupRoot({ 'memory.max': 'max\n' }), 16 * GiB)).toBeUndefined();
  });

  it('memory: reads a cgroup v1 limit, and its "unlimited" (about 2^63) as none', async () => {
    expect(await readCgroupMemoryLimit(cgroupRoot({ 'memory/memory.limit_in_bytes': '1073741824\n' }), 16 * GiB)).toBe(GiB);
    expect(await readCgroupMemoryLimit(cgroupRoot({ 'memory/memory.limit_in_bytes': '9223372036854771712\n' }), 16 * GiB)).toBeUndefined();
  });

  it('memory: a limit at or above total memory, or garbage, is no limit', async () => {
    expect(await readCgroupMemoryLimit(cgroupRoot({ 'memory.max': `${32 * GiB}\n` }), 16 * GiB)).toBeUndefined();
    expect(await readCgroupMemoryLimit(cgroupRoot({ 'memory.max': 'junk\n' }), 16 * GiB)).toBeUndefined();
  });

  it('memory: available is the cgroup limit when set, else total memory', async () => {
    expect(await memoryAvailable(cgroupRoot({ 'memory.max': '536870912\n' }), 16 * GiB)).toBe(512 * 1024 ** 2);
    expect(await memoryAvailable(cgroupRoot({}), 16 * GiB)).toBe(16 * GiB);
    expect(await memoryAvailable(cgroupRoot({}))).toBe(os.totalmem());
  });

  it('memory: RSS over the limit, in per mille', () => {
    expect(new MemorySignal(800, 1000, () => 250).read()).toBe(250);
    expect(new MemorySignal(800, 1000, () => 5000).read()).toBe(1000);
    const real = new MemorySignal(false, os.totalmem()).read();
    expect(real).toBeGreaterThan(0);
    expect(real).toBeLessThan(1000);
  });

  it('heap: used heap over the heap limit, in per mille', () => {
    const before = new HeapSignal(false).read();
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThan(1000);
  });

  it('event loop: a loop blocked in Atomics.wait reads near 1000 ‰; an idle one low', async () => {
    const signal = new EventLoopSignal(800);
    signal.restart();
    blockEventLoopWithAtomicsWait(300);
    expect(signal.read()).toBeGreaterThan(800);
    // idle now: a reading over the next 300 ms is low. Up to five tries, because on a loaded CI
    // machine something else in the test process (Node 22, CPED run) once kept the loop busy for
    // one whole 300 ms slice; a signal stuck at 1000 still fails all five.
    const idle: number[] = [];
    for (let i = 0; i < 5 && !(idle.at(-1)! < 800); i++) {
      await sleep(300);
      idle.push(signal.read());
    }
    expect(Math.min(...idle)).toBeLessThan(800);
  });
});

describe('engine: what a session adds to profileTypes', () => {
  const window = () => ({ startMs: Date.now() - 100, endMs: Date.now() });
  // CPU time needs the plugin's labeler (engine contexts); wall and heap do not
  const engine = (profileTypes: { cpu: boolean; wall: boolean; heap: boolean }, heapBetweenSessions = false) =>
    new EngineProfiler({ sampleRate: 100, heapSamplingInterval: 64 * 1024, profileTypes, windowMs: 1000, heapBetweenSessions });
  const kinds = async (profiler: EngineProfiler): Promise<string[]> => (await profiler.stop(window())).profiles.map((p) => p.kind).sort();

  it('an event-loop session adds wall; the next session is back to profileTypes', async () => {
    const profiler = engine({ cpu: false, wall: false, heap: true });
    profiler.start({ wall: true });
    burnCpuFor(100);
    expect(await kinds(profiler)).toEqual(['heap', 'wall']);
    profiler.start();
    expect(timeProfilerRunning()).toBe(false);
    expect(await kinds(profiler)).toEqual(['heap']);
  });

  it('the heap sampler open() started runs across sessions until close(); only heap sessions report it', async () => {
    const profiler = engine({ cpu: false, wall: true, heap: false }, true);
    profiler.open();
    expect(heapSamplerRunning()).toBe(true);
    const retained = Array.from({ length: 2000 }, (_, i) => ({ i, text: `before the session ${i}` }));
    profiler.start();
    burnCpuFor(50);
    expect(await kinds(profiler)).toEqual(['wall']);
    expect(heapSamplerRunning()).toBe(true);
    profiler.start({ heap: true });
    burnCpuFor(50);
    expect(await kinds(profiler)).toEqual(['heap', 'wall']);
    expect(heapSamplerRunning()).toBe(true);
    profiler.close();
    expect(heapSamplerRunning()).toBe(false);
    expect(timeProfilerRunning()).toBe(false);
    expect(retained).toHaveLength(2000);
  });

  it('a heap-only session leaves the time profiler alone', async () => {
    const profiler = engine({ cpu: false, wall: false, heap: true });
    profiler.start();
    expect(timeProfilerRunning()).toBe(false);
    expect(heapSamplerRunning()).toBe(true);
    await profiler.stop(window());
    expect(heapSamplerRunning()).toBe(false);
  });
});
