/**
 * Host safety at the plugin level, real engine, real HTTP to a local Pyroscope stand-in:
 *
 * - the edge cases of the session state machine: start() while running, stop() while idle,
 *   start() right after a stop() that was not awaited, stop() racing a scheduled upload (with
 *   Jest fake timers: the race is made exact, not hoped for), close() during an upload that
 *   hangs or is slow;
 * - failures inside the engine: the time profiler or heap sampler already taken by someone
 *   else, a throw while the engine turns contexts into labels, a throw while collecting a
 *   window. The service keeps answering, the error is logged once and shows in stats().
 *
 * The exporter's own faults (timeouts, retries, 4xx/5xx, queue bounds) are covered by
 * test/pyroscope-exporter.test.ts and test/exporter-memory.test.ts.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { heap, time } from '@datadog/pprof';
import Fastify, { type FastifyInstance } from 'fastify';
import profilingPlugin from '../src';
import { CpuUsageMeter } from '../src/cpu-usage';
import { LabelCardinalityCap } from '../src/labels/cardinality';
import type { ProfilingOptions } from '../src/options';
import { IngestStandIn, sampleLabels, type RecordedRequest } from './helpers/ingest-stand-in';
import {
  BURN_FUNCTION,
  burnCpuFor,
  burnCpuForHostSafety,
  heapSamplerRunning,
  hottestUserFunction,
  kindOfRequest,
  LogCapture,
  timeProfilerRunning,
  waitUntil,
} from './fixtures/host-safety-helpers';

function get(instance: FastifyInstance, path: string): Promise<{ status: number; body: string }> {
  const { port } = instance.server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

const ERROR = 50;
const INFO = 30;

let ingest: IngestStandIn;
let app: FastifyInstance | undefined;
let log: LogCapture;

/**
 * A greet-like app with the plugin; sessions only when a test starts one (threshold 1000, hour-long
 * timers). The first threshold check still runs 1 s after ready(), and a test burning CPU on a slow
 * machine can read 1000 ‰ there: unless a test sets its own threshold, usage reads 0 ‰.
 */
async function buildApp(options: Partial<ProfilingOptions> = {}): Promise<FastifyInstance> {
  if (options.cpuThreshold === undefined) jest.spyOn(CpuUsageMeter.prototype, 'measure').mockResolvedValue(0);
  log = new LogCapture();
  const instance = Fastify({ logger: { level: 'info', stream: log } });
  instance.get('/ping', async () => {
    burnCpuForHostSafety(300_000);
    return { msg: 'pong' };
  });
  await instance.register(profilingPlugin, {
    appName: 'host-safety-faults',
    serverAddress: ingest.url,
    cpuThreshold: 1000,
    checkInterval: '1h',
    profilingDuration: '1h',
    uploadRate: '5m',
    sampleRate: 1000,
    flushTimeout: '2s',
    profileTypes: { cpu: true, wall: false, heap: true },
    ...options,
  });
  app = instance;
  return instance;
}

async function settledUploads(): Promise<void> {
  await waitUntil(() => app!.profiler.stats().pending === 0, 10_000);
}

function cpuRequests(): RecordedRequest[] {
  return ingest.requests.filter((r) => kindOfRequest(r) === 'cpu');
}

/** What every test ends with: counts that add up, nothing left running. */
function expectAccountedFor(instance: FastifyInstance): void {
  const s = instance.profiler.stats();
  expect(s.uploadsOk + s.dropped + s.pending).toBe(s.profilesCollected);
}

beforeAll(async () => {
  ingest = await IngestStandIn.start();
});

afterEach(async () => {
  jest.useRealTimers();
  jest.restoreAllMocks();
  await app?.close();
  app = undefined;
  ingest.respond({ kind: 'ok' });
  ingest.clearRecorded();
  // a test that failed half-way must not leave the engine to the next one
  try {
    if (timeProfilerRunning()) time.stop(false);
  } catch {
    // wedged (see the labelling test): nothing more to do from here
  }
  heap.stop();
});

afterAll(async () => {
  await ingest.close();
});

describe('session edge cases', () => {
  it('start() while running returns false and changes nothing', async () => {
    const instance = await buildApp();
    await instance.ready();
    expect(instance.profiler.start({ reason: 'first' })).toBe(true);
    const before = instance.profiler.stats();
    expect(instance.profiler.start({ reason: 'second' })).toBe(false);
    expect(instance.profiler.start({ duration: 1, reason: 'third' })).toBe(false);
    const after = instance.profiler.stats();
    expect(after.sessions).toBe(1);
    expect(after.currentSession).toEqual(before.currentSession);
    expect(after.currentSession?.reason).toBe('first');
    expect(after.engineErrors).toBe(0);
    expect(instance.profiler.state).toBe('profiling');
    await instance.profiler.stop();
    expect(log.find(INFO, /session started/)).toHaveLength(1);
  });

  it('stop() while idle resolves, collects nothing and logs nothing', async () => {
    const instance = await buildApp();
    await instance.ready();
    await instance.profiler.stop();
    await instance.profiler.stop();
    expect(instance.profiler.stats()).toMatchObject({ state: 'idle', sessions: 0, windows: 0, profilesCollected: 0, engineErrors: 0 });
    expect(log.find(INFO, /session ended/)).toHaveLength(0);

    // and after a session: the second stop() is the idle one
    instance.profiler.start();
    await instance.profiler.stop();
    const windows = instance.profiler.stats().windows;
    await instance.profiler.stop();
    expect(instance.profiler.stats().windows).toBe(windows);
    expect(log.find(INFO, /session ended/)).toHaveLength(1);
    expect(timeProfilerRunning()).toBe(false);
  });

  it('start() right after a stop() that was not awaited starts a new session (the engine is free at once)', async () => {
    const instance = await buildApp();
    await instance.ready();
    instance.profiler.start();
    burnCpuFor(50);
    const stopping = instance.profiler.stop();
    expect(instance.profiler.state).toBe('idle');
    expect(instance.profiler.start({ reason: 'again' })).toBe(true);
    burnCpuFor(50);
    await Promise.all([stopping, instance.profiler.stop()]);
    await settledUploads();
    const s = instance.profiler.stats();
    expect(s).toMatchObject({ sessions: 2, windows: 2, engineErrors: 0, lastError: undefined, dropped: 0 });
    expect(cpuRequests()).toHaveLength(2);
    expect(log.find(ERROR, /.*/)).toEqual([]);
    expectAccountedFor(instance);
  });

  it('another plugin fails at boot: nothing keeps sampling, and once the app is closed a new registration works', async () => {
    const failing = Fastify({ logger: false });
    failing.register(profilingPlugin, { appName: 'host-safety-faults', serverAddress: ingest.url, cpuThreshold: 0 });
    failing.register(async () => {
      throw new Error('database down');
    });
    await expect(failing.ready()).rejects.toThrow('database down');
    expect(timeProfilerRunning()).toBe(false);
    expect(heapSamplerRunning()).toBe(false);
    await failing.close();
    const instance = await buildApp();
    await instance.ready();
    expect(instance.profiler.start()).toBe(true);
    await instance.profiler.stop();
  });

  describe('stop() racing a scheduled upload (fake timers make the race exact)', () => {
    /** Time profiler stops with restart=true: the scheduled upload's capture. */
    function watchWindowCaptures(): jest.SpyInstance {
      return jest.spyOn(time, 'stop');
    }
    const restarts = (spy: jest.SpyInstance): number => spy.mock.calls.filter(([restart]) => restart === true).length;

    async function startRacingSession(): Promise<FastifyInstance> {
      const instance = await buildApp({ uploadRate: '1s', profilingDuration: '1m' });
      await instance.ready();
      jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask', 'performance', 'hrtime'] });
      expect(instance.profiler.start()).toBe(true);
      // The controller reads the real clock (Date.now as it was at registration, before the fake
      // timers): the window must be past its shortest length (a quarter of uploadRate) in real
      // time, or the tick leaves it to the next one.
      burnCpuFor(300);
      return instance;
    }

    it('stop() in the same tick as the upload timer: one window, collected once', async () => {
      const captures = watchWindowCaptures();
      const instance = await startRacingSession();
      jest.advanceTimersByTime(1_000); // the upload timer fires and queues its window...
      const stopping = instance.profiler.stop(); // ...and stop() lands before that window ran
      await stopping;
      jest.useRealTimers();
      await settledUploads();

      expect(restarts(captures)).toBe(0); // the scheduled capture saw the session gone and did nothing
      const s = instance.profiler.stats();
      expect(s).toMatchObject({ state: 'idle', sessions: 1, windows: 1, engineErrors: 0, dropped: 0 });
      expect(cpuRequests()).toHaveLength(1);
      expect(hottestUserFunction([cpuRequests()[0].profile!])).toBe(BURN_FUNCTION);
      expect(timeProfilerRunning()).toBe(false);
      expect(heapSamplerRunning()).toBe(false);
      // and the profiler starts again
      expect(instance.profiler.start()).toBe(true);
      await instance.profiler.stop();
      expectAccountedFor(instance);
    });

    it('stop() while the scheduled window is being encoded: two contiguous windows, none lost or doubled', async () => {
      const captures = watchWindowCaptures();
      const instance = await startRacingSession();
      jest.advanceTimersByTime(1_000);
      for (let i = 0; i < 100 && restarts(captures) === 0; i++) await Promise.resolve();
      expect(restarts(captures)).toBe(1); // captured, now encoding
      burnCpuFor(50);
      await instance.profiler.stop();
      jest.useRealTimers();
      await settledUploads();

      const s = instance.profiler.stats();
      expect(s).toMatchObject({ state: 'idle', sessions: 1, windows: 2, engineErrors: 0, dropped: 0 });
      // in ms: time_nanos is a ms timestamp x 1e6, past 2**53, so its last digits are float noise
      const ms = (nanos: unknown): number => Math.round(Number(nanos) / 1e6);
      const windows = cpuRequests()
        .map((r) => ({ start: ms(r.profile!.timeNanos), end: ms(r.profile!.timeNanos) + ms(r.profile!.durationNanos) }))
        .sort((a, b) => a.start - b.start);
      expect(windows).toHaveLength(2);
      expect(windows[0].end).toBe(windows[1].start);
      expect(windows[0].end).toBeGreaterThan(windows[0].start);
      expect(timeProfilerRunning()).toBe(false);
      expectAccountedFor(instance);
    });
  });

  describe('close() during an upload', () => {
    const FLUSH_TIMEOUT_MS = 1_000;
    /** What close() may take beyond flushTimeout: the controller's own 250 ms plus a loaded CI machine. */
    const CLOSE_MARGIN_MS = 1_500;

    async function closeTimed(instance: FastifyInstance): Promise<number> {
      const started = performance.now();
      await instance.close();
      return performance.now() - started;
    }

    it.each([
      ['hangs', { kind: 'hang' } as const],
      // Slow enough that no answer can arrive before close() ends, even when a loaded machine
      // makes the second start() take a second or more (3 s was seen answered in time at load 17).
      ['answers after 20 s', { kind: 'slow', ms: 20_000 } as const],
    ])('server %s: close() returns within flushTimeout and counts what it could not deliver', async (_name, behavior) => {
      ingest.respond(behavior);
      const instance = await buildApp({ flushTimeout: FLUSH_TIMEOUT_MS, uploadTimeout: '30s' });
      await instance.ready();
      instance.profiler.start();
      burnCpuFor(50);
      await instance.profiler.stop(); // first window: its upload is now in flight, unanswered
      await ingest.waitForRequests(1, 5_000);
      instance.profiler.start(); // a session is running at close: its last window goes too
      burnCpuFor(50);

      const closeMs = await closeTimed(instance);
      console.log(`close() with the server that ${_name}: ${closeMs.toFixed(0)} ms (flushTimeout ${FLUSH_TIMEOUT_MS} ms)`);
      expect(closeMs).toBeLessThan(FLUSH_TIMEOUT_MS + CLOSE_MARGIN_MS);
      const s = instance.profiler.stats();
      expect(s.state).toBe('closed');
      expect(s.sessions).toBe(2);
      expect(s.pending).toBe(0);
      expect(s.uploadsOk).toBe(0);
      expect(s.dropped).toBe(s.profilesCollected);
      expect(s.profilesCollected).toBeGreaterThanOrEqual(3); // cpu + heap of the first window, at least heap of the last
      expect(instance.profiler.start()).toBe(false);
      expect(timeProfilerRunning()).toBe(false);
      expect(heapSamplerRunning()).toBe(false);
      app = undefined;
    });

    it('server answers within flushTimeout: close() waits and delivers everything', async () => {
      ingest.respond({ kind: 'slow', ms: 150 });
      const instance = await buildApp({ flushTimeout: '5s' });
      await instance.ready();
      instance.profiler.start();
      burnCpuFor(50);
      await instance.profiler.stop();
      instance.profiler.start();
      burnCpuFor(50);
      await instance.close();
      const s = instance.profiler.stats();
      expect(s).toMatchObject({ state: 'closed', pending: 0, dropped: 0 });
      expect(s.uploadsOk).toBe(s.profilesCollected);
      expect(ingest.uploads).toHaveLength(s.profilesCollected);
      app = undefined;
    });
  });
});

describe('failures inside the engine', () => {
  /** Over real HTTP (inject's light-my-request needs ESM that Jest's CommonJS runtime cannot load). */
  async function expectServiceAnswers(instance: FastifyInstance): Promise<void> {
    if (instance.server.listening === false) await instance.listen({ port: 0, host: '127.0.0.1' });
    for (let i = 0; i < 3; i++) {
      const response = await get(instance, '/ping');
      expect(response).toEqual({ status: 200, body: '{"msg":"pong"}' });
    }
  }

  it('the time profiler is taken by someone else: the service runs, the error is logged once and in stats()', async () => {
    time.start({ intervalMicros: 10_000, durationMillis: 60_000 }); // e.g. another profiling agent
    const instance = await buildApp({ cpuThreshold: 0 }); // continuous: the session starts at ready()
    await expect(instance.ready()).resolves.toBeDefined();
    await expectServiceAnswers(instance);

    let s = instance.profiler.stats();
    expect(s.state).toBe('idle');
    expect(s.sessions).toBe(0);
    expect(s.engineErrors).toBe(1);
    expect(s.lastError).toMatch(/could not start.*already started/);
    for (let i = 0; i < 5; i++) expect(instance.profiler.start()).toBe(false);
    s = instance.profiler.stats();
    expect(s.engineErrors).toBe(6);
    const errors = log.find(ERROR, /could not start/);
    expect(errors).toHaveLength(1); // rate-limited: once a minute per kind
    expect(errors[0].err).toMatch(/already started/);

    // once the engine is free, the same registration profiles normally
    time.stop(false);
    expect(instance.profiler.start()).toBe(true);
    await expectServiceAnswers(instance);
    await instance.profiler.stop();
    await settledUploads();
    expect(cpuRequests()).toHaveLength(1);
    expectAccountedFor(instance);
  });

  it('the heap sampler is taken by someone else: the time profiler it started is released again', async () => {
    heap.start(512 * 1024, 64);
    const instance = await buildApp();
    await instance.ready();
    expect(instance.profiler.start()).toBe(false);
    expect(timeProfilerRunning()).toBe(false); // not left sampling with no owner
    expect(instance.profiler.stats()).toMatchObject({ state: 'idle', sessions: 0, engineErrors: 1 });
    expect(instance.profiler.stats().lastError).toMatch(/Heap profiler is already started/);
    await expectServiceAnswers(instance);
    heap.stop();
    expect(instance.profiler.start()).toBe(true);
    await instance.profiler.stop();
  });

  it('a throw while the engine labels samples at a session end: the window is counted lost, the engine stays usable', async () => {
    const instance = await buildApp({ profileTypes: { cpu: true, wall: true, heap: false } });
    await instance.ready();
    instance.profiler.start();
    await expectServiceAnswers(instance); // labelled samples for /ping
    const labelBug = jest.spyOn(LabelCardinalityCap.prototype, 'apply').mockImplementation(() => {
      throw new Error('label bug');
    });
    await instance.profiler.stop();
    expect(labelBug).toHaveBeenCalled();
    labelBug.mockRestore();

    let s = instance.profiler.stats();
    expect(s.engineErrors).toBe(1);
    expect(s.lastError).toMatch(/label bug/);
    expect(log.find(ERROR, /could not be collected/)).toHaveLength(1);
    // @datadog/pprof forgets a stopped engine only after labelling: it must not stay "started"
    expect(timeProfilerRunning()).toBe(false);

    expect(instance.profiler.start()).toBe(true);
    await expectServiceAnswers(instance);
    await instance.profiler.stop();
    await settledUploads();
    s = instance.profiler.stats();
    expect(s.engineErrors).toBe(1);
    const cpu = cpuRequests();
    expect(cpu).toHaveLength(1);
    const routes = cpu[0].profile!.sample.map((sample) => sampleLabels(cpu[0].profile!, sample).route);
    expect(routes).toContain('/ping');
    expectAccountedFor(instance);
  });

  it('a throw while collecting a scheduled window: that window is counted lost, the session goes on', async () => {
    const instance = await buildApp({ uploadRate: '1s', profilingDuration: '1m' });
    await instance.ready();
    const realStop = time.stop;
    let failures = 0;
    jest.spyOn(time, 'stop').mockImplementation((restart, ...rest) => {
      if (restart === true && failures === 0) {
        failures++;
        throw new Error('native failure');
      }
      return realStop(restart, ...rest);
    });
    instance.profiler.start();
    const windowsAtLeast = async (n: number): Promise<void> => {
      expect(await waitUntil(() => instance.profiler.stats().windows + instance.profiler.stats().engineErrors >= n, 10_000)).toBe(true);
    };
    burnCpuFor(100);
    await windowsAtLeast(1); // the failed window
    burnCpuFor(100);
    await windowsAtLeast(2); // the next one works
    expect(instance.profiler.state).toBe('profiling');
    await expectServiceAnswers(instance);
    await instance.profiler.stop();
    await settledUploads();
    const s = instance.profiler.stats();
    expect(s.engineErrors).toBe(1);
    expect(s.lastError).toMatch(/native failure/);
    expect(s.windows).toBeGreaterThanOrEqual(2);
    expect(log.find(ERROR, /could not be collected/)).toHaveLength(1);
    expect(timeProfilerRunning()).toBe(false);
    expectAccountedFor(instance);
  });
});
