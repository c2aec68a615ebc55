/**
 * The window/upload schedule of a running session: its end timer (one, armed at its start), an
 * upload tick every `uploadRate`, the last window at its end, and the hand-over of each window's
 * profiles to the exporters (not awaited: an upload never holds up the next window).
 *
 * Window handling is serialized on one promise chain, so a manual `stop()` racing a scheduled
 * upload (where @pyroscope/nodejs breaks) simply runs after it. The engine itself stops at once
 * (only the last window's encoding waits on the chain), so `start()` right after works.
 */
import type { CollectedWindow, SessionProfiler, Window } from '../profilers';
import type { Exporter } from '../types';
import type { ControllerRecord } from './stats';

/** The shortest window an upload tick cuts, as a share of uploadRate (see flush). */
const MIN_WINDOW_SHARE = 0.25;

/** What the schedule reads and moves of a session: times in ms since the epoch. */
export interface ScheduledSession {
  startedAt: number;
  /** undefined: until stop()/close() */
  endsAt?: number;
  /** where the window being collected began */
  windowStart: number;
}

export interface WindowScheduleDeps {
  profiler: SessionProfiler;
  exporters: readonly Exporter[];
  uploadRate: number;
  record: ControllerRecord;
  now: () => number;
}

export class WindowSchedule {
  /** every window operation runs after the previous one: no overlap, no race */
  private chain: Promise<unknown> = Promise.resolve();
  private current?: ScheduledSession;
  private sessionTimer?: NodeJS.Timeout;
  private uploadTimer?: NodeJS.Timeout;

  constructor(private readonly deps: WindowScheduleDeps) {}

  /** A session started: `onElapsed` after `duration` (unless it has no end), an upload every uploadRate. */
  arm(session: ScheduledSession, duration: number, onElapsed: () => void): void {
    this.current = session;
    if (session.endsAt !== undefined) {
      this.sessionTimer = setTimeout(onElapsed, duration);
      this.sessionTimer.unref();
    }
    this.uploadTimer = setInterval(() => void this.flush(), this.deps.uploadRate);
    this.uploadTimer.unref();
  }

  /**
   * The session ended: the engine stops now and its last window is handed over in turn on the
   * chain, then `onShipped` runs. Resolves when that is done; never rejects.
   */
  finish(session: ScheduledSession, onShipped: (window: Window) => void): Promise<void> {
    clearTimeout(this.sessionTimer);
    clearInterval(this.uploadTimer);
    this.sessionTimer = this.uploadTimer = undefined;
    this.current = undefined;
    // The engine stops now, not when the window chain gets here: once state says 'idle', a
    // start() (manual, or a threshold check landing right after the session ended) must find
    // the engine free, not "already started" behind a window still being encoded.
    const window = this.nextWindow(session);
    const stopped = stopNow(this.deps.profiler, window);
    return this.enqueue(async () => {
      const collected = await stopped;
      this.ship(collected);
      onShipped(window);
    });
  }

  /** Resolves once every window handed to the chain so far is through. */
  settled(): Promise<void> {
    return this.chain.then(() => undefined);
  }

  /** One window: capture now, encode, hand to every exporter. */
  private flush(): Promise<void> {
    return this.enqueue(async () => {
      const session = this.current;
      if (!session) return;
      // Upload ticks that waited behind a saturated event loop (or behind the previous window's
      // encoding) run back to back: seen 14 ms apart under load. Such a sliver is not cut: its
      // samples go to the next window, instead of an upload of a heap snapshot alone.
      if (this.deps.now() - session.windowStart < this.deps.uploadRate * MIN_WINDOW_SHARE) return;
      const window = this.nextWindow(session);
      const collected = await this.deps.profiler.collect(window);
      this.ship(collected);
    });
  }

  private nextWindow(session: ScheduledSession): Window {
    const endMs = this.deps.now();
    const window = { startMs: session.windowStart, endMs };
    session.windowStart = endMs;
    return window;
  }

  private ship(collected: CollectedWindow): void {
    this.deps.record.countWindow(collected);
    const { profiles } = collected;
    if (profiles.length === 0) return;
    for (const exporter of this.deps.exporters) void exporter.export(profiles);
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.chain.then(task).catch((error: unknown) => {
      this.deps.record.engineError('window', 'a profile window could not be collected', error);
    });
    this.chain = run;
    return run;
  }
}

/**
 * Stops the profiler synchronously; its encoding goes on in the returned promise. A throw becomes
 * a rejection that is marked handled here (the window chain awaits and counts it later).
 */
function stopNow(profiler: SessionProfiler, window: Window): Promise<CollectedWindow> {
  let stopped: Promise<CollectedWindow>;
  try {
    stopped = profiler.stop(window);
  } catch (error) {
    stopped = Promise.reject(error);
  }
  stopped.catch(() => undefined);
  return stopped;
}
