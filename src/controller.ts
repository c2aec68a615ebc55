/**
 * The session state machine: idle -> profiling -> idle, ..., closed.
 *
 * - A check reads every trigger (CPU, event loop, heap, memory: src/triggers/) one second after
 *   `ready()` (the start-up itself is not compared) and then every `checkInterval`; the first
 *   trigger at or above its threshold, with no session running, starts a session, unless the
 *   cooldown or the hourly bound holds it back (counted). No threshold set = manual only.
 * - A session lasts exactly `profilingDuration` (one timer armed at its start), uploads every
 *   `uploadRate` and once more at its end. `cpuThreshold: 0` is one session from `ready()`
 *   until `close()`, without gaps. An event-loop session also collects wall time, a heap or
 *   memory session heap profiles, whatever `profileTypes` says (SESSION_EXTRAS).
 * - `close()` stops the timers, ends the session, hands the last window to the exporters and
 *   waits for them at most `flushTimeout`.
 *
 * Nothing here ever throws into the host: timer callbacks catch, count and log.
 * Window handling is serialized on one promise chain, so a manual `stop()` racing a scheduled
 * upload (where @pyroscope/nodejs breaks) simply runs after it. The engine itself stops at once
 * (only the last window's encoding waits on the chain), so `start()` right after works.
 */
import type { CollectedWindow, SessionExtras, SessionProfiler, Window } from './profilers';
import { NO_READINGS, READING_NAMES, type Readings, type Trigger, type TriggerCause, type TriggerSignal } from './triggers';
import type { Exporter, MinimalLogger } from './types';
import { LogLimiter } from './log-limiter';
import { formatDuration } from './duration';

export type ProfilerState = 'idle' | 'profiling' | 'closed';

export interface ControllerOptions {
  /** 0 = continuous; the trigger thresholds themselves live on `triggers` */
  cpuThreshold: number | false;
  checkInterval: number;
  profilingDuration: number;
  uploadRate: number;
  flushTimeout: number;
  /** ms after an automatically started session ends before a trigger may start the next; default 0 */
  cooldown?: number;
  /** automatically started sessions in any 60 minutes; default (and false) unbounded */
  maxSessionsPerHour?: number | false;
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

/** What started the latest session. */
export interface LastTrigger {
  signal: TriggerCause;
  /** the reading that crossed (per mille); absent for manual and continuous sessions */
  value?: number;
  /** the threshold it crossed (per mille); 0 for continuous */
  threshold?: number;
  at: string;
}

export interface ControllerStats extends Readings {
  state: ProfilerState;
  sessions: number;
  windows: number;
  profilesCollected: number;
  samplesFolded: number;
  /** windows after which V8's sampler was found stuck and the engine was restarted */
  samplerRestarts: number;
  engineErrors: number;
  lastError?: string;
  currentSession?: { reason: string; startedAt: string; endsAt?: string };
  lastTrigger?: LastTrigger;
  /** checks where a trigger crossed but no session started: within the cooldown, or over the hourly bound */
  sessionsHeldBack: { cooldown: number; hourlyLimit: number };
}

/** The first threshold check after ready: soon, but past the start-up burst. */
export const FIRST_CHECK_DELAY_MS = 1000;

/** The shortest window an upload tick cuts, as a share of uploadRate (see flush). */
const MIN_WINDOW_SHARE = 0.25;

/** Extra time `close()` allows past flushTimeout before it stops waiting no matter what. */
const CLOSE_MARGIN_MS = 250;

const HOUR_MS = 3_600_000;

/**
 * What a session collects on top of profileTypes, by what started it: a blocked event loop spends
 * no CPU, so only wall time shows where it blocks; a heap or memory session is about the heap.
 */
const SESSION_EXTRAS: Partial<Record<TriggerCause, SessionExtras>> = {
  eventLoop: { wall: true },
  heap: { heap: true },
  memory: { heap: true },
};

const SIGNAL_NAMES: Record<TriggerSignal, string> = {
  cpu: 'CPU usage',
  eventLoop: 'event-loop utilization',
  heap: 'heap usage',
  memory: 'memory usage',
};

interface Crossing {
  signal: TriggerSignal;
  value: number;
  threshold: number;
}

export class ProfilingController {
  private currentState: ProfilerState = 'idle';
  private checkTimer?: NodeJS.Timeout;
  private firstCheckTimer?: NodeJS.Timeout;
  private sessionTimer?: NodeJS.Timeout;
  private uploadTimer?: NodeJS.Timeout;
  private session?: { reason: string; cause: TriggerCause; startedAt: number; endsAt?: number; windowStart: number };
  /** every window operation runs after the previous one: no overlap, no race */
  private chain: Promise<unknown> = Promise.resolve();
  private checking = false;
  private readonly logLimiter = new LogLimiter();
  private readonly now: () => number;
  private readonly counters = { sessions: 0, windows: 0, profilesCollected: 0, samplesFolded: 0, samplerRestarts: 0, engineErrors: 0 };
  private lastError?: string;
  private lastTrigger?: LastTrigger;
  private readonly readings: Readings = { ...NO_READINGS };
  private readonly heldBack = { cooldown: 0, hourlyLimit: 0 };
  /** when the last automatically started session ended (for the cooldown) */
  private lastAutomaticEnd?: number;
  /** start times of automatic sessions in the last hour (pruned at each check that would start one) */
  private automaticStarts: number[] = [];

  constructor(private readonly deps: ControllerDeps) {
    this.now = deps.now ?? Date.now;
  }

  get state(): ProfilerState {
    return this.currentState;
  }

  /**
   * At ready: samplers that run between sessions start (profiler.open), with threshold 0 the one
   * session starts, and then the triggers take their baseline, so the first comparison,
   * FIRST_CHECK_DELAY_MS later (or after checkInterval if shorter) in every mode, covers neither
   * the start-up (loading modules, compiling: near 100 % in every process, it would always trip
   * a threshold and read as the process's usage) nor the profiler's own start.
   */
  async ready(): Promise<void> {
    if (this.currentState === 'closed' || this.checkTimer) return;
    const { cpuThreshold, checkInterval } = this.deps.options;
    // Checks run in continuous mode too: they keep the readings current.
    this.checkTimer = setInterval(() => void this.check(), checkInterval);
    this.checkTimer.unref();
    this.openProfiler();
    if (cpuThreshold === 0) {
      this.begin({ duration: Infinity, reason: 'cpuThreshold is 0 (continuous)', trigger: { signal: 'continuous', threshold: 0 } });
    }
    if (checkInterval > FIRST_CHECK_DELAY_MS) {
      this.firstCheckTimer = setTimeout(() => void this.check(), FIRST_CHECK_DELAY_MS);
      this.firstCheckTimer.unref();
    }
    for (const trigger of this.deps.triggers) {
      try {
        await trigger.restart?.();
      } catch (error) {
        this.recordError(`${trigger.signal}_reading`, `could not read ${SIGNAL_NAMES[trigger.signal]}`, error);
      }
    }
  }

  /**
   * Read every trigger; start a session when one crossed and none runs. Never rejects.
   * With threshold 0 the one continuous session was started by ready(): a check only measures
   * (after a manual stop(), profiling stays off until start() or another trigger).
   */
  async check(): Promise<void> {
    if (this.checking || this.currentState === 'closed') return;
    this.checking = true;
    try {
      const crossing = await this.readTriggers();
      if (crossing && this.currentState === 'idle' && this.mayStartAutomatically()) {
        const { signal, value, threshold } = crossing;
        const option = signal === 'cpu' ? 'cpuThreshold' : `${signal}Threshold`;
        let reason = `${SIGNAL_NAMES[signal]} ${value}‰ >= ${option} ${threshold}‰`;
        if (signal === 'eventLoop') reason += '; wall time collected too';
        this.begin({ reason, trigger: crossing });
      }
    } finally {
      this.checking = false;
    }
  }

  /**
   * Start a session now. Returns false (and changes nothing) when one is already running,
   * after close, or when the engine refuses to start (logged, counted in stats).
   */
  start(options: StartOptions = {}): boolean {
    return this.begin({ duration: options.duration, reason: options.reason ?? 'started manually', trigger: { signal: 'manual' } });
  }

  private begin(options: { duration?: number; reason: string; trigger: Omit<LastTrigger, 'at'> }): boolean {
    if (this.currentState !== 'idle') return false;
    const duration = options.duration ?? this.deps.options.profilingDuration;
    const { reason, trigger } = options;
    const cause = trigger.signal;
    try {
      this.deps.profiler.start(SESSION_EXTRAS[cause]);
    } catch (error) {
      this.counters.engineErrors++;
      this.recordError('engine_start', 'the profiler could not start; the service is not affected', error);
      return false;
    }
    const startedAt = this.now();
    const endsAt = Number.isFinite(duration) ? startedAt + duration : undefined;
    this.session = { reason, cause, startedAt, endsAt, windowStart: startedAt };
    this.currentState = 'profiling';
    this.counters.sessions++;
    if (isAutomatic(cause)) this.automaticStarts.push(startedAt);
    this.lastTrigger = { ...trigger, at: new Date(startedAt).toISOString() };
    this.deps.logger.info(
      { reason, trigger, duration: endsAt === undefined ? 'until close' : formatDuration(duration) },
      `continuous profiling: session started by ${cause} (${reason})`,
    );
    if (endsAt !== undefined) {
      this.sessionTimer = setTimeout(() => void this.endSession('duration elapsed'), duration);
      this.sessionTimer.unref();
    }
    this.uploadTimer = setInterval(() => void this.flush(), this.deps.options.uploadRate);
    this.uploadTimer.unref();
    return true;
  }

  /** End the running session and upload its last window. Resolves when it is handed over. */
  stop(): Promise<void> {
    return this.endSession('stopped manually');
  }

  /** Stop everything; the last window is delivered within flushTimeout. Never hangs. */
  async close(): Promise<void> {
    if (this.currentState === 'closed') return;
    clearInterval(this.checkTimer);
    clearTimeout(this.firstCheckTimer);
    this.checkTimer = this.firstCheckTimer = undefined;
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
    const s = this.session;
    return {
      state: this.currentState,
      ...this.counters,
      ...this.readings,
      lastError: this.lastError,
      currentSession: s && {
        reason: s.reason,
        startedAt: new Date(s.startedAt).toISOString(),
        endsAt: s.endsAt === undefined ? undefined : new Date(s.endsAt).toISOString(),
      },
      lastTrigger: this.lastTrigger && { ...this.lastTrigger },
      sessionsHeldBack: { ...this.heldBack },
    };
  }

  /** Every trigger's reading, kept for stats(); the first that crossed its threshold. */
  private async readTriggers(): Promise<Crossing | undefined> {
    let first: Crossing | undefined;
    for (const trigger of this.deps.triggers) {
      const { signal, threshold } = trigger;
      let value: number;
      try {
        value = await trigger.read();
      } catch (error) {
        this.recordError(`${signal}_reading`, `could not read ${SIGNAL_NAMES[signal]}`, error);
        continue;
      }
      this.readings[READING_NAMES[signal]] = value;
      if (first === undefined && threshold !== false && value >= threshold) first = { signal, value, threshold };
    }
    return first;
  }

  /** The cooldown and the hourly bound, for sessions a trigger would start; a hold-back is counted. */
  private mayStartAutomatically(): boolean {
    const now = this.now();
    const { cooldown = 0, maxSessionsPerHour = false } = this.deps.options;
    if (this.lastAutomaticEnd !== undefined && now - this.lastAutomaticEnd < cooldown) {
      this.heldBack.cooldown++;
      this.logRateLimited('held_back_cooldown', 'info', { cooldown: formatDuration(cooldown), heldBack: this.heldBack.cooldown }, 'continuous profiling: a trigger crossed within the cooldown; no session started');
      return false;
    }
    this.automaticStarts = this.automaticStarts.filter((at) => now - at < HOUR_MS);
    if (maxSessionsPerHour !== false && this.automaticStarts.length >= maxSessionsPerHour) {
      this.heldBack.hourlyLimit++;
      this.logRateLimited('held_back_hourly', 'info', { maxSessionsPerHour, heldBack: this.heldBack.hourlyLimit }, 'continuous profiling: a trigger crossed but maxSessionsPerHour sessions already ran in the last hour; no session started');
      return false;
    }
    return true;
  }

  /** Samplers that run between sessions (the heap sampler for heap/memory triggers); a failure is logged. */
  private openProfiler(): void {
    try {
      this.deps.profiler.open?.();
    } catch (error) {
      this.counters.engineErrors++;
      this.recordError('engine_open', 'the heap sampler could not start at ready; sessions will still profile', error);
    }
  }

  private closeProfiler(): void {
    try {
      this.deps.profiler.close?.();
    } catch (error) {
      this.recordError('engine_close', 'the profiler did not stop cleanly', error);
    }
  }

  /** One window: capture now, encode, hand to every exporter (not awaited: never blocks). */
  private flush(): Promise<void> {
    return this.enqueue(async () => {
      const session = this.session;
      if (!session) return;
      // Upload ticks that waited behind a saturated event loop (or behind the previous window's
      // encoding) run back to back: seen 14 ms apart under load. Such a sliver is not cut: its
      // samples go to the next window, instead of an upload of a heap snapshot alone.
      if (this.now() - session.windowStart < this.deps.options.uploadRate * MIN_WINDOW_SHARE) return;
      const window = this.nextWindow(session);
      const collected = await this.deps.profiler.collect(window);
      this.ship(collected);
    });
  }

  private endSession(why: string): Promise<void> {
    if (this.currentState !== 'profiling' || !this.session) return this.chain.then(() => undefined);
    const session = this.session;
    clearTimeout(this.sessionTimer);
    clearInterval(this.uploadTimer);
    this.sessionTimer = this.uploadTimer = undefined;
    this.session = undefined;
    this.currentState = 'idle';
    if (isAutomatic(session.cause)) this.lastAutomaticEnd = this.now();
    // The engine stops now, not when the window chain gets here: once state says 'idle', a
    // start() (manual, or a threshold check landing right after the session ended) must find
    // the engine free, not "already started" behind a window still being encoded.
    const window = this.nextWindow(session);
    const stopped = stopNow(this.deps.profiler, window);
    return this.enqueue(async () => {
      const collected = await stopped;
      this.ship(collected);
      this.deps.logger.info(
        { reason: why, lasted: formatDuration(window.endMs - session.startedAt) },
        `continuous profiling: session ended (${why})`,
      );
    });
  }

  private nextWindow(session: { windowStart: number }): Window {
    const endMs = this.now();
    const window = { startMs: session.windowStart, endMs };
    session.windowStart = endMs;
    return window;
  }

  private ship(collected: CollectedWindow): void {
    this.counters.windows++;
    this.counters.samplesFolded += collected.foldedSamples;
    if (collected.foldedSamples > 0) {
      this.logRateLimited('samples_folded', 'warn', { folded: collected.foldedSamples }, 'continuous profiling: a profile exceeded Pyroscope\'s 16,000 samples; the smallest stacks were folded into "(other stacks)"');
    }
    if (collected.samplerRestarted === true) {
      this.counters.samplerRestarts++;
      this.logRateLimited('sampler_restarted', 'warn', { samplerRestarts: this.counters.samplerRestarts }, 'continuous profiling: V8\'s sampler got stuck (two long windows without a single sample); the time profiler was restarted');
    }
    const { profiles } = collected;
    this.counters.profilesCollected += profiles.length;
    if (profiles.length === 0) return;
    for (const exporter of this.deps.exporters) void exporter.export(profiles);
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.chain.then(task).catch((error: unknown) => {
      this.counters.engineErrors++;
      this.recordError('window', 'a profile window could not be collected', error);
    });
    this.chain = run;
    return run;
  }

  private recordError(kind: string, message: string, error: unknown): void {
    const text = error instanceof Error ? error.message : String(error);
    this.lastError = `${message}: ${text}`;
    this.logRateLimited(kind, 'error', { err: text }, `continuous profiling: ${message}`);
  }

  private logRateLimited(kind: string, level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string): void {
    const suppressed = this.logLimiter.admit(kind);
    if (suppressed === undefined) return;
    this.deps.logger[level](suppressed > 0 ? { ...fields, suppressed } : fields, message);
  }
}

/** Started by a trigger (what the cooldown and the hourly bound are about), not by start() or continuous mode. */
function isAutomatic(cause: TriggerCause): cause is TriggerSignal {
  return cause !== 'manual' && cause !== 'continuous';
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
