import { ProfilingController, type ControllerOptions } from '../src/controller';
import type { CollectedWindow, SessionProfiler, Window } from '../src/profilers';
import type { EncodedProfile, Exporter, ExporterStats, MinimalLogger } from '../src/types';

/** A profiler that records what the controller asks of it, and hands back one profile per window. */
class FakeProfiler implements SessionProfiler {
  calls: string[] = [];
  windows: Window[] = [];
  failStart = false;
  /** windows (by number, from 0) after which the profiler says it restarted a stuck sampler */
  samplerRestartedAt = new Set<number>();

  start(): void {
    this.calls.push('start');
    if (this.failStart) throw new Error('native profiler refused to start');
  }
  async collect(window: Window): Promise<CollectedWindow> {
    this.calls.push('collect');
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
