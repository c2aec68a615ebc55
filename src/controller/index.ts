/**
 * The session state machine: idle -> profiling -> idle, ..., closed. This file owns the state,
 * the running session and the engine's lifecycle; the rooms next to it own the rest:
 * trigger-polling.ts (when triggers are read, which crossed), start-bounds.ts (cooldown and
 * hourly bound), window-schedule.ts (session end, upload ticks, the window chain, hand-over to
 * exporters) and stats.ts (counters, readings, errors, rate-limited log lines).
 *
 * - A check reads every trigger (CPU, event loop, heap, memory: src/triggers/) one second after
 *   `ready()` (the start-up itself is not compared) and then every `checkInterval`; the first
 *   trigger at or above its threshold, with no session running, starts a session, unless the
 *   cooldown or the hourly bound holds it back (counted). No threshold set = manual only.
 * - A session lasts exactly `profilingDuration`, uploads every `uploadRate` and once more at its
 *   end. `cpuThreshold: 0` is one session from `ready()` until `close()`, without gaps. An
 *   event-loop session also collects wall time, a heap or memory session heap profiles,
 *   whatever `profileTypes` says (SESSION_EXTRAS).
 * - `close()` stops the timers, ends the session, hands the last window to the exporters and
 *   waits for them at most `flushTimeout`.
 *
 * Nothing here ever throws into the host: timer callbacks catch, count and log.
 */
import type { SessionExtras, SessionProfiler } from '../profilers';
import type { Trigger, TriggerCause } from '../triggers';
import type { Exporter, MinimalLogger } from '../types';
import { formatDuration } from '../duration';
import { StartBounds, type StartBoundOptions } from './start-bounds';
import { ControllerRecord, type ControllerStats, type LastTrigger, type ProfilerState } from './stats';
import { SIGNAL_NAMES, TriggerPolling, type Crossing } from './trigger-polling';
import { WindowSchedule, type ScheduledSession } from './window-schedule';

export type { ControllerStats, LastTrigger, ProfilerState } from './stats';
export { FIRST_CHECK_DELAY_MS } from './trigger-polling';

export interface ControllerOptions extends StartBoundOptions {
  /** 0 = continuous; the trigger thresholds themselves live on `triggers` */
  cpuThreshold: number | false;
  checkInterval: number;
  profilingDuration: number;
  uploadRate: number;
  flushTimeout: number;
}

export interface ControllerDeps {
  options: ControllerOptions;
  /** read at every check, in this order: the first at or above its threshold starts a session */
  triggers: readonly Trigger[];
  profiler: SessionProfiler;
  exporters: readonly Exporter[];
  logger: MinimalLogger;
  now?: () => number;
}

export interface StartOptions {
  /** session length in ms; default profilingDuration; Infinity = until stop()/close() */
  duration?: number;
  /** why, for the log line and stats */
  reason?: string;
}

/** Extra time `close()` allows past flushTimeout before it stops waiting no matter what. */
const CLOSE_MARGIN_MS = 250;

/**
 * What a session collects on top of profileTypes, by what started it: a blocked event loop spends
 * no CPU, so only wall time shows where it blocks; a heap or memory session is about the heap.
 */
const SESSION_EXTRAS: Partial<Record<TriggerCause, SessionExtras>> = {
  eventLoop: { wall: true },
  heap: { heap: true },
  memory: { heap: true },
};

interface Session extends ScheduledSession {
  reason: string;
  cause: TriggerCause;
}

export class ProfilingController {
  private currentState: ProfilerState = 'idle';
  private session?: Session;
  private readonly now: () => number;
  private readonly record: ControllerRecord;
  private readonly bounds: StartBounds;
  private readonly polling: TriggerPolling;
  private readonly windows: WindowSchedule;

  constructor(private readonly deps: ControllerDeps) {
    const { options, profiler, exporters } = deps;
    this.now = deps.now ?? Date.now;
    this.record = new ControllerRecord(deps.logger);
    this.bounds = new StartBounds(options, this.record, this.now);
    this.polling = new TriggerPolling(deps.triggers, options.checkInterval, this.record, (crossing) => this.onCrossing(crossing));
    this.windows = new WindowSchedule({ profiler, exporters, uploadRate: options.uploadRate, record: this.record, now: this.now });
  }

  get state(): ProfilerState {
    return this.currentState;
  }

  /**
   * At ready: the checks are armed, samplers that run between sessions start (profiler.open),
   * with threshold 0 the one session starts, and then the triggers take their baseline, so the
   * first comparison, FIRST_CHECK_DELAY_MS later (or after checkInterval if shorter) in every
   * mode, covers neither the start-up (loading modules, compiling: near 100 % in every process,
   * it would always trip a threshold and read as the process's usage) nor the profiler's own start.
   */
  async ready(): Promise<void> {
    if (this.currentState === 'closed' || this.polling.running) return;
    this.polling.start();
    this.openProfiler();
    if (this.deps.options.cpuThreshold === 0) {
      this.begin({ duration: Infinity, reason: 'cpuThreshold is 0 (continuous)', trigger: { signal: 'continuous', threshold: 0 } });
    }
    await this.polling.restartBaselines();
  }

  /**
   * Read every trigger; start a session when one crossed and none runs. Never rejects.
   * With threshold 0 the one continuous session was started by ready(): a check only measures
   * (after a manual stop(), profiling stays off until start() or another trigger).
   */
  check(): Promise<void> {
    return this.polling.check();
  }

  /**
   * Start a session now. Returns false (and changes nothing) when one is already running,
   * after close, or when the engine refuses to start (logged, counted in stats).
   */
  start(options: StartOptions = {}): boolean {
    return this.begin({ duration: options.duration, reason: options.reason ?? 'started manually', trigger: { signal: 'manual' } });
  }

  /** End the running session and upload its last window. Resolves when it is handed over. */
  stop(): Promise<void> {
    return this.endSession('stopped manually');
  }

  /** Stop everything; the last window is delivered within flushTimeout. Never hangs. */
  async close(): Promise<void> {
    if (this.currentState === 'closed') return;
    this.polling.stop();
    const { flushTimeout } = this.deps.options;
    const deadline = this.now() + flushTimeout;
    const last = this.endSession('closing');
    this.currentState = 'closed';
    this.closeProfiler();
    const remaining = (): number => Math.max(0, deadline - this.now());
    const closeAll = last.then(() => Promise.all(this.deps.exporters.map((e) => e.close(remaining()))));
    await raceTimeout(closeAll, flushTimeout + CLOSE_MARGIN_MS);
  }

  stats(): ControllerStats {
    return this.record.snapshot(this.currentState, this.session, this.bounds.heldBack);
  }

  private onCrossing({ signal, value, threshold, detail }: Crossing): void {
    if (this.currentState !== 'idle' || !this.bounds.admit()) return;
    const option = signal === 'cpu' ? 'cpuThreshold' : `${signal}Threshold`;
    let reason = `${SIGNAL_NAMES[signal]} ${value}‰ >= ${option} ${threshold}‰`;
    if (detail !== undefined) reason += ` (${detail})`;
    if (signal === 'eventLoop') reason += '; wall time collected too';
    this.begin({ reason, trigger: { signal, value, threshold } });
  }

  private begin(options: { duration?: number; reason: string; trigger: Omit<LastTrigger, 'at'> }): boolean {
    if (this.currentState !== 'idle') return false;
    const duration = options.duration ?? this.deps.options.profilingDuration;
    const { reason, trigger } = options;
    const cause = trigger.signal;
    try {
      this.deps.profiler.start(SESSION_EXTRAS[cause]);
    } catch (error) {
      this.record.engineError('engine_start', 'the profiler could not start; the service is not affected', error);
      return false;
    }
    const startedAt = this.now();
    const endsAt = Number.isFinite(duration) ? startedAt + duration : undefined;
    this.session = { reason, cause, startedAt, endsAt, windowStart: startedAt };
    this.currentState = 'profiling';
    this.record.counters.sessions++;
    this.bounds.started(cause, startedAt);
    this.record.lastTrigger = { ...trigger, at: new Date(startedAt).toISOString() };
    this.deps.logger.info(
      { reason, trigger, duration: endsAt === undefined ? 'until close' : formatDuration(duration) },
      `continuous profiling: session started by ${cause} (${reason})`,
    );
    this.windows.arm(this.session, duration, () => void this.endSession('duration elapsed'));
    return true;
  }

  private endSession(why: string): Promise<void> {
    const session = this.session;
    if (this.currentState !== 'profiling' || !session) return this.windows.settled();
    this.session = undefined;
    this.currentState = 'idle';
    this.bounds.ended(session.cause, this.now());
    return this.windows.finish(session, (window) => {
      this.deps.logger.info(
        { reason: why, lasted: formatDuration(window.endMs - session.startedAt) },
        `continuous profiling: session ended (${why})`,
      );
    });
  }

  /** Samplers that run between sessions (the heap sampler for heap/memory triggers); a failure is logged. */
  private openProfiler(): void {
    try {
      this.deps.profiler.open?.();
    } catch (error) {
      this.record.engineError('engine_open', 'the heap sampler could not start at ready; sessions will still profile', error);
    }
  }

  private closeProfiler(): void {
    try {
      this.deps.profiler.close?.();
    } catch (error) {
      this.record.error('engine_close', 'the profiler did not stop cleanly', error);
    }
  }
}

/** Resolves when `work` settles or after `ms`, whichever comes first; never rejects. */
function raceTimeout(work: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    work.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      () => {
        clearTimeout(timer);
        resolve();
      },
    );
  });
}
