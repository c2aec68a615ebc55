import { ProfilingController, type ControllerOptions } from '../src/controller';
import type { CollectedWindow, SessionExtras, SessionProfiler, Window } from '../src/profilers';
import type { Trigger, TriggerSignal } from '../src/triggers';
import type { EncodedProfile, Exporter, ExporterStats, MinimalLogger } from '../src/types';

/** A profiler that records what the controller asks of it, and hands back one profile per window. */
class FakeProfiler implements SessionProfiler {
  calls: string[] = [];
  windows: Window[] = [];
  failStart = false;
  /** windows (by number, from 0) after which the profiler says it restarted a stuck sampler */
  samplerRestartedAt = new Set<number>();

  extras: Array<SessionExtras | undefined> = [];

  /** open() at ready and close() at close, kept apart from the session calls */
  lifecycle: string[] = [];

  open(): void {
    this.lifecycle.push('open');
  }
  close(): void {
    this.lifecycle.push(`close after ${this.calls.at(-1) ?? 'nothing'}`);
  }
  start(extras?: SessionExtras): void {
    this.calls.push('start');
    this.extras.push(extras);
    if (this.failStart) throw new Error('native profiler refused to start');
  }
  /** each collect() takes this long (fake time): a window's encoding stuck behind a busy loop */
  collectDelayMs = 0;
  async collect(window: Window): Promise<CollectedWindow> {
    this.calls.push('collect');
    if (this.collectDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.collectDelayMs));
    return this.window(window);
  }
  async stop(window: Window): Promise<CollectedWindow> {
    this.calls.push('stop');
    return this.window(window);
  }
  private window(window: Window): CollectedWindow {
    const restarted = this.samplerRestartedAt.has(this.windows.length);
    this.windows.push(window);
    const profile: EncodedProfile = { kind: 'cpu', body: Buffer.from('x'), startMs: window.startMs, endMs: window.endMs, sampleCount: 1 };
    return restarted ? { profiles: [profile], foldedSamples: 0, samplerRestarted: true } : { profiles: [profile], foldedSamples: 0 };
  }
}

class RecordingExporter implements Exporter {
  readonly name = 'recording';
  exported: EncodedProfile[] = [];
  closedWith: number[] = [];
  closeNeverResolves = false;
  async export(profiles: readonly EncodedProfile[]): Promise<void> {
    this.exported.push(...profiles);
  }
  close(timeoutMs: number): Promise<void> {
    this.closedWith.push(timeoutMs);
    return this.closeNeverResolves ? new Promise(() => undefined) : Promise.resolve();
  }
  stats(): ExporterStats {
    return { uploadsOk: this.exported.length, uploadsFailed: 0, bytesSent: 0, dropped: 0, pending: 0 };
  }
}

function silentLogger(): MinimalLogger & { lines: Array<{ level: string; msg?: string; obj: unknown }> } {
  const lines: Array<{ level: string; msg?: string; obj: unknown }> = [];
  const at = (level: string) => (obj: unknown, msg?: string) => void lines.push({ level, obj, msg });
  return { lines, info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') };
}

const options: ControllerOptions = {
  cpuThreshold: 700,
  checkInterval: 10_000,
  profilingDuration: 120_000,
  uploadRate: 15_000,
  flushTimeout: 5_000,
};

function setup(overrides: Partial<ControllerOptions> = {}, usage: number[] = [0]) {
  const profiler = new FakeProfiler();
  const exporter = new RecordingExporter();
  const logger = silentLogger();
  const readings = [...usage];
  const measureUsage = jest.fn(async () => (readings.length > 1 ? readings.shift()! : readings[0]));
  const restart = jest.fn(async () => undefined);
  const threshold = overrides.cpuThreshold ?? options.cpuThreshold;
  const controller = new ProfilingController({
    options: { ...options, ...overrides },
    triggers: [{ signal: 'cpu', threshold: threshold === 0 ? false : threshold, read: measureUsage, restart }],
    profiler,
    exporters: [exporter],
    logger,
    now: () => Date.now(),
  });
  return { controller, profiler, exporter, logger, measureUsage, restart };
}

/** Let pending promise callbacks run (the controller's window chain) without moving the clock. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

beforeEach(() => {
  jest.useFakeTimers({ now: new Date('2026-11-26T07:00:00Z') });
});
afterEach(() => {
  jest.useRealTimers();
});

describe('threshold-triggered sessions', () => {
  it('takes a baseline at ready, checks 1 s later and every checkInterval, and starts nothing below the threshold', async () => {
    const { controller, profiler, measureUsage, restart } = setup({}, [300]);
    await controller.ready();
    expect(restart).toHaveBeenCalledTimes(1); // the start-up burst is not measured, only a baseline taken
    expect(measureUsage).toHaveBeenCalledTimes(0);
    await jest.advanceTimersByTimeAsync(1000);
    expect(measureUsage).toHaveBeenCalledTimes(1);
    await jest.advanceTimersByTimeAsync(59_000);
    expect(measureUsage).toHaveBeenCalledTimes(7);
    expect(profiler.calls).toEqual([]);
    expect(controller.state).toBe('idle');
    await controller.close();
  });

  it('starts at the first check at or above the threshold and ends after exactly profilingDuration', async () => {
    const { controller, profiler, exporter, logger } = setup({}, [100, 700, 100]);
    await controller.ready(); // baseline
    await jest.advanceTimersByTimeAsync(1000); // 100: nothing
    expect(controller.state).toBe('idle');
    await jest.advanceTimersByTimeAsync(9000); // at 10 s, 700: starts
    expect(controller.state).toBe('profiling');
    const startedAt = Date.now();
    expect(logger.lines.find((l) => l.msg?.includes('session started'))?.msg).toContain('CPU usage 700‰ >= cpuThreshold 700‰');

    await jest.advanceTimersByTimeAsync(120_000 - 1);
    expect(controller.state).toBe('profiling');
    expect(profiler.calls.filter((c) => c === 'collect')).toHaveLength(7); // every 15 s: 15..105 s
    await jest.advanceTimersByTimeAsync(1);
    expect(controller.state).toBe('idle');
    expect(profiler.calls.at(-1)).toBe('stop');
    // windows are contiguous and cover the session exactly
    expect(profiler.windows[0].startMs).toBe(startedAt);
    for (let i = 1; i < profiler.windows.length; i++) expect(profiler.windows[i].startMs).toBe(profiler.windows[i - 1].endMs);
    expect(profiler.windows.at(-1)!.endMs).toBe(startedAt + 120_000);
    expect(exporter.exported).toHaveLength(8);
    expect(logger.lines.some((l) => l.msg?.includes('session ended (duration elapsed)'))).toBe(true);
    await controller.close();
  });

  it('starts a new session at the next check when usage is still high', async () => {
    const { controller, profiler } = setup({ profilingDuration: 20_000, uploadRate: 10_000 }, [900]);
    await controller.ready();
    await jest.advanceTimersByTimeAsync(1000); // session 1 starts at 1 s
    expect(controller.state).toBe('profiling');
    await jest.advanceTimersByTimeAsync(20_000); // and ends at 21 s; the check at 20 s finds it running
    expect(controller.state).toBe('idle');
    await jest.advanceTimersByTimeAsync(9_000); // the check at 30 s starts session 2
    expect(controller.state).toBe('profiling');
    expect(controller.stats().sessions).toBe(2);
    expect(profiler.calls.filter((c) => c === 'start')).toHaveLength(2);
    await controller.close();
  });

  it('with threshold 0 profiles from ready until close, without gaps or restarts', async () => {
    const { controller, profiler, exporter } = setup({ cpuThreshold: 0 }, [0]);
    await controller.ready();
    expect(controller.state).toBe('profiling');
    await jest.advanceTimersByTimeAsync(60 * 60_000);
    expect(controller.state).toBe('profiling');
    expect(profiler.calls.filter((c) => c === 'start')).toHaveLength(1);
    expect(profiler.calls.filter((c) => c === 'collect')).toHaveLength(240);
    await controller.close();
    expect(profiler.calls.at(-1)).toBe('stop');
    expect(exporter.exported).toHaveLength(241);
    expect(controller.state).toBe('closed');
  });
});

describe('close', () => {
  it('uploads the last window and closes the exporters with flushTimeout', async () => {
    const { controller, profiler, exporter } = setup({ cpuThreshold: 0 });
    await controller.ready();
    await jest.advanceTimersByTimeAsync(7_000);
    await controller.close();
    expect(profiler.calls).toEqual(['start', 'stop']);
    expect(exporter.exported).toHaveLength(1);
    expect(exporter.exported[0].endMs - exporter.exported[0].startMs).toBe(7_000);
    expect(exporter.closedWith).toEqual([5_000]);
  });

  it('returns after flushTimeout even when an exporter never finishes', async () => {
    const { controller, exporter } = setup({ cpuThreshold: 0 });
    exporter.closeNeverResolves = true;
    await controller.ready();
    let closed = false;
    void controller.close().then(() => (closed = true));
    await jest.advanceTimersByTimeAsync(5_000);
    expect(closed).toBe(false);
    await jest.advanceTimersByTimeAsync(300);
    expect(closed).toBe(true);
  });

  it('stops every timer: nothing runs after close', async () => {
    const { controller, profiler, measureUsage } = setup({}, [900]);
    await controller.ready();
    await controller.close();
    const calls = profiler.calls.length;
    const checks = measureUsage.mock.calls.length;
    await jest.advanceTimersByTimeAsync(10 * 60_000);
    expect(profiler.calls.length).toBe(calls);
    expect(measureUsage.mock.calls.length).toBe(checks);
    expect(jest.getTimerCount()).toBe(0);
    expect(controller.start()).toBe(false);
  });
});

describe('manual control', () => {
  it('start() runs a session of the given duration; start() while running changes nothing', async () => {
    const { controller, profiler } = setup({}, [0]);
    await controller.ready();
    expect(controller.start({ duration: 30_000, reason: 'deploy' })).toBe(true);
    expect(controller.stats().currentSession?.reason).toBe('deploy');
    expect(controller.start()).toBe(false);
    await jest.advanceTimersByTimeAsync(30_000);
    expect(controller.state).toBe('idle');
    expect(profiler.calls.filter((c) => c === 'start')).toHaveLength(1);
    await controller.close();
  });

  it('stop() while idle resolves and does nothing', async () => {
    const { controller, profiler } = setup();
    await controller.ready();
    await controller.stop();
    expect(profiler.calls).toEqual([]);
    await controller.close();
  });

  it('upload ticks queued behind a slow window cut no sliver: the next window takes its samples', async () => {
    const { controller, profiler } = setup({ cpuThreshold: 0 });
    await controller.ready();
    profiler.collectDelayMs = 40_000; // ticks at 30 s and 45 s wait behind the window cut at 15 s
    await jest.advanceTimersByTimeAsync(60_000);
    profiler.collectDelayMs = 0;
    await jest.advanceTimersByTimeAsync(60_000); // the window started at 55 s takes until 95 s
    const closing = controller.close();
    await jest.advanceTimersByTimeAsync(10_000);
    await closing;
    // the upload ticks' windows (the last one is whatever close() cuts); before: a 0 ms window
    // right after each slow one (the queued tick running as soon as the previous ended)
    const lengths = profiler.windows.slice(0, -1).map((w) => w.endMs - w.startMs);
    expect(lengths).toEqual([15_000, 40_000, 40_000, 10_000, 15_000]);
    // contiguous: nothing between two windows is lost
    for (let i = 1; i < profiler.windows.length; i++) expect(profiler.windows[i].startMs).toBe(profiler.windows[i - 1].endMs);
  });

  it('stop() racing a scheduled upload: the window is collected once, nothing lost or doubled', async () => {
    const { controller, profiler, exporter } = setup({ cpuThreshold: 0 });
    await controller.ready();
    await jest.advanceTimersByTimeAsync(15_000 - 1);
    jest.advanceTimersByTime(1); // fires the upload timer, its window work is now queued
    const stopped = controller.stop();
    await stopped;
    await settle();
    // the queued upload finds the session ended; the stop collects the whole window instead
    expect(profiler.calls).toEqual(['start', 'stop']);
    expect(exporter.exported.map((p) => p.endMs - p.startMs)).toEqual([15_000]);
    expect(controller.state).toBe('idle');
    await jest.advanceTimersByTimeAsync(60_000);
    expect(profiler.calls).toEqual(['start', 'stop']); // threshold 0: stays stopped until start()
    await controller.close();
  });

  it('a failing engine start leaves the controller idle, logs once and reports the error', async () => {
    const { controller, profiler, logger } = setup({}, [900]);
    profiler.failStart = true;
    await controller.ready();
    await jest.advanceTimersByTimeAsync(30_000);
    expect(controller.state).toBe('idle');
    expect(controller.stats().engineErrors).toBe(4);
    expect(controller.stats().lastError).toContain('native profiler refused to start');
    expect(logger.lines.filter((l) => l.level === 'error')).toHaveLength(1);
    await controller.close();
  });

  it('a failing usage reading is reported and checks go on', async () => {
    const { controller, measureUsage } = setup();
    measureUsage.mockRejectedValue(new Error('EACCES /proc'));
    await controller.ready();
    await jest.advanceTimersByTimeAsync(20_000);
    expect(measureUsage).toHaveBeenCalledTimes(3); // 1 s, 10 s, 20 s (ready only takes a baseline)
    expect(controller.stats().lastError).toContain('EACCES /proc');
    await controller.close();
  });
});

describe('a stuck V8 sampler', () => {
  it('is counted in stats().samplerRestarts and logged as a rate-limited warning', async () => {
    const { controller, profiler, logger } = setup({ cpuThreshold: 0 });
    profiler.samplerRestartedAt = new Set([1, 2]);
    await controller.ready();
    await jest.advanceTimersByTimeAsync(4 * 15_000);
    expect(controller.stats()).toMatchObject({ windows: 4, samplerRestarts: 2 });
    const warns = logger.lines.filter((l) => l.level === 'warn' && l.msg?.includes("V8's sampler got stuck"));
    expect(warns).toHaveLength(1); // the second, within the minute, is suppressed
    expect(warns[0].obj).toMatchObject({ samplerRestarts: 1 });
    await controller.close();
  });
});

/** A trigger whose readings a test sets; `reads` counts them. */
class FakeTrigger implements Trigger {
  value = 0;
  reads = 0;
  restarts = 0;
  failWith?: Error;
  constructor(
    readonly signal: TriggerSignal,
    readonly threshold: number | false,
  ) {}
  read(): number {
    this.reads++;
    if (this.failWith) throw this.failWith;
    return this.value;
  }
  restart(): void {
    this.restarts++;
  }
}

function setupTriggers(overrides: Partial<ControllerOptions>, thresholds: Partial<Record<TriggerSignal, number | false>>) {
  const triggers = (['cpu', 'eventLoop', 'heap', 'memory'] as const).map((signal) => new FakeTrigger(signal, thresholds[signal] ?? false));
  const [cpu, eventLoop, heap, memory] = triggers;
  const profiler = new FakeProfiler();
  const logger = silentLogger();
  const controller = new ProfilingController({
    options: { ...options, cpuThreshold: thresholds.cpu ?? false, ...overrides },
    triggers,
    profiler,
    exporters: [new RecordingExporter()],
    logger,
    now: () => Date.now(),
  });
  return { controller, profiler, logger, cpu, eventLoop, heap, memory };
}

describe('triggers', () => {
  it('reads every signal at every check, enabled or not, and shows the readings in stats()', async () => {
    const { controller, cpu, eventLoop, heap, memory } = setupTriggers({}, {});
    Object.assign(cpu, { value: 1000 });
    Object.assign(eventLoop, { value: 990 });
    Object.assign(heap, { value: 400 });
    Object.assign(memory, { value: 300 });
    await controller.ready();
    await jest.advanceTimersByTimeAsync(1000);
    expect(controller.stats()).toMatchObject({ cpuUsage: 1000, eventLoopUtilization: 990, heapUsage: 400, memoryUsage: 300 });
    expect(controller.state).toBe('idle'); // every trigger off: manual only
    expect(controller.stats().lastTrigger).toBeUndefined();
    await controller.close();
  });

  it('the first trigger in order that crossed wins; lastTrigger and the log line say which', async () => {
    const { controller, profiler, logger, cpu, eventLoop, heap } = setupTriggers({}, { cpu: 700, eventLoop: 800, heap: 500 });
    cpu.value = 100;
    eventLoop.value = 950;
    heap.value = 600;
    await controller.ready();
    await jest.advanceTimersByTimeAsync(1000);
    expect(controller.state).toBe('profiling');
    expect(controller.stats().lastTrigger).toEqual({ signal: 'eventLoop', value: 950, threshold: 800, at: new Date().toISOString() });
    const line = logger.lines.find((l) => l.msg?.includes('session started'));
    expect(line?.msg).toContain('session started by eventLoop (event-loop utilization 950‰ >= eventLoopThreshold 800‰; wall time collected too)');
    expect(line?.obj).toMatchObject({ trigger: { signal: 'eventLoop', value: 950, threshold: 800 } });
    expect(profiler.extras).toEqual([{ wall: true }]); // a blocked loop shows only in wall time
    await controller.close();
  });

  it('a heap or memory session collects heap profiles; a CPU or manual one what profileTypes says', async () => {
    const { controller, profiler, heap, memory, cpu } = setupTriggers({ profilingDuration: 5_000, uploadRate: 5_000 }, { cpu: 700, heap: 500, memory: 500 });
    await controller.ready();
    heap.value = 600;
    await jest.advanceTimersByTimeAsync(1000);
    expect(controller.stats().lastTrigger?.signal).toBe('heap');
    await controller.stop();
    heap.value = 0;
    memory.value = 700;
    await jest.advanceTimersByTimeAsync(10_000);
    expect(controller.stats().lastTrigger).toMatchObject({ signal: 'memory', value: 700, threshold: 500 });
    await controller.stop();
    memory.value = 0;
    cpu.value = 800;
    await jest.advanceTimersByTimeAsync(10_000);
    expect(controller.stats().lastTrigger?.signal).toBe('cpu');
    await controller.stop();
    cpu.value = 0;
    controller.start({ reason: 'deploy' });
    expect(controller.stats().lastTrigger).toEqual({ signal: 'manual', at: new Date().toISOString() });
    expect(profiler.extras).toEqual([{ heap: true }, { heap: true }, undefined, undefined]);
    await controller.close();
  });

  it('manual only (every trigger off): a saturated reading starts nothing; start() works', async () => {
    const { controller, cpu, eventLoop, heap, memory } = setupTriggers({ checkInterval: 1000 }, {});
    for (const t of [cpu, eventLoop, heap, memory]) t.value = 1000;
    await controller.ready();
    await jest.advanceTimersByTimeAsync(10 * 60_000);
    expect(controller.stats()).toMatchObject({ sessions: 0, state: 'idle', cpuUsage: 1000 });
    expect(controller.start()).toBe(true);
    expect(controller.stats().lastTrigger?.signal).toBe('manual');
    await controller.close();
  });

  it('a failing reading of one signal is logged and the others still trigger', async () => {
    const { controller, heap, memory } = setupTriggers({}, { heap: 500, memory: 500 });
    heap.failWith = new Error('no heap statistics');
    memory.value = 600;
    await controller.ready();
    await jest.advanceTimersByTimeAsync(1000);
    expect(controller.stats().lastError).toBe('could not read heap usage: no heap statistics');
    expect(controller.stats().lastTrigger?.signal).toBe('memory');
    await controller.close();
  });

  it('opens the profiler at ready (heap sampler between sessions) and closes it after the last stop', async () => {
    const { controller, profiler } = setupTriggers({ cpuThreshold: 0 }, {});
    await controller.ready();
    expect(profiler.lifecycle).toEqual(['open']);
    await controller.close();
    expect(profiler.lifecycle).toEqual(['open', 'close after stop']);
  });
});

describe('continuous mode readings (issue 14, item 1)', () => {
  it('takes the baselines after the session started and compares first at +1 s, so no reading spans start-up', async () => {
    const { controller, profiler, cpu, eventLoop } = setupTriggers({ cpuThreshold: 0 }, {});
    const order: string[] = [];
    const started = profiler.start.bind(profiler);
    profiler.start = (extras) => (order.push('session start'), started(extras));
    cpu.restart = () => void order.push('cpu baseline');
    cpu.value = 30;
    await controller.ready();
    expect(order).toEqual(['session start', 'cpu baseline']);
    expect(eventLoop.restarts).toBe(1);
    expect(cpu.reads).toBe(0);
    expect(controller.stats()).toMatchObject({ cpuUsage: 0, lastTrigger: { signal: 'continuous', threshold: 0 } });
    await jest.advanceTimersByTimeAsync(1000);
    expect(cpu.reads).toBe(1); // +1 s, not +checkInterval (10 s)
    expect(controller.stats().cpuUsage).toBe(30);
    await controller.close();
  });
});

describe('flapping: cooldown and maxSessionsPerHour', () => {
  it('cooldown: after an automatic session ends, crossings within the cooldown are held back and counted', async () => {
    const { controller, cpu, logger } = setupTriggers({ profilingDuration: 20_000, uploadRate: 10_000, cooldown: 60_000 }, { cpu: 700 });
    cpu.value = 900;
    await controller.ready();
    await jest.advanceTimersByTimeAsync(1000); // session 1: 1 s .. 21 s
    expect(controller.stats().sessions).toBe(1);
    await jest.advanceTimersByTimeAsync(20_000);
    expect(controller.state).toBe('idle');
    // checks at 30, 40, 50, 60, 70, 80 s are within 60 s of the end (21 s)
    await jest.advanceTimersByTimeAsync(60_000);
    expect(controller.stats().sessions).toBe(1);
    expect(controller.stats().sessionsHeldBack).toEqual({ cooldown: 6, hourlyLimit: 0 });
    expect(logger.lines.filter((l) => l.msg?.includes('within the cooldown'))).toHaveLength(1); // rate-limited
    await jest.advanceTimersByTimeAsync(10_000); // 90 s: 69 s after the end
    expect(controller.stats().sessions).toBe(2);
    await controller.close();
  });

  it('cooldown does not hold back manual sessions, and a manual session starts no cooldown', async () => {
    const { controller, cpu } = setupTriggers({ profilingDuration: 20_000, uploadRate: 10_000, cooldown: 60_000 }, { cpu: 700 });
    await controller.ready();
    expect(controller.start({ duration: 5_000 })).toBe(true);
    await jest.advanceTimersByTimeAsync(5_000);
    cpu.value = 900;
    await jest.advanceTimersByTimeAsync(5_000); // check at 10 s
    expect(controller.stats()).toMatchObject({ sessions: 2, sessionsHeldBack: { cooldown: 0, hourlyLimit: 0 } });
    expect(controller.stats().lastTrigger?.signal).toBe('cpu');
    await controller.stop();
    expect(controller.start()).toBe(true); // within the cooldown of the automatic one: manual still works
    await controller.close();
  });

  it('maxSessionsPerHour: at most that many automatic sessions in any 60 minutes, hold-backs counted', async () => {
    const { controller, cpu } = setupTriggers({ profilingDuration: 60_000, uploadRate: 15_000, maxSessionsPerHour: 3 }, { cpu: 700 });
    cpu.value = 900;
    await controller.ready();
    // sessions start at 1 s, 70 s, 140 s (each lasts 60 s, the next check after its end starts the next)
    await jest.advanceTimersByTimeAsync(30 * 60_000);
    expect(controller.stats().sessions).toBe(3);
    const heldBack = controller.stats().sessionsHeldBack.hourlyLimit;
    expect(heldBack).toBeGreaterThan(100);
    // manual sessions are not bounded
    expect(controller.start({ duration: 1_000 })).toBe(true);
    await jest.advanceTimersByTimeAsync(1_000);
    // an hour after the first automatic session, the next may start
    await jest.advanceTimersByTimeAsync(30 * 60_000 + 10_000);
    expect(controller.stats().sessions).toBe(5);
    expect(controller.stats().lastTrigger?.signal).toBe('cpu');
    await controller.close();
  });
});
