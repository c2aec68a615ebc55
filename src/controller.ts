/**
 * The session state machine: idle -> profiling -> idle, ..., closed.
 *
 * - A check compares CPU usage with the threshold one second after `ready()` (the usage of the
 *   start-up itself is not compared) and then every `checkInterval`; at or above it, with no
 *   session running, a session starts.
 * - A session lasts exactly `profilingDuration` (one timer armed at its start), uploads every
 *   `uploadRate` and once more at its end. `cpuThreshold: 0` is one session from `ready()`
 *   until `close()`, without gaps.
 * - `close()` stops the timers, ends the session, hands the last window to the exporters and
 *   waits for them at most `flushTimeout`.
 *
 * Nothing here ever throws into the host: timer callbacks catch, count and log.
 * Window handling is serialized on one promise chain, so a manual `stop()` racing a scheduled
 * upload (where @pyroscope/nodejs breaks) simply runs after it. The engine itself stops at once
 * (only the last window's encoding waits on the chain), so `start()` right after works.
 */
import type { CollectedWindow, SessionProfiler, Window } from './profilers';
import type { Exporter, MinimalLogger } from './types';
import { LogLimiter } from './log-limiter';
import { formatDuration } from './duration';

export type ProfilerState = 'idle' | 'profiling' | 'closed';

export interface ControllerOptions {
  cpuThreshold: number;
  checkInterval: number;
  profilingDuration: number;
  uploadRate: number;
  flushTimeout: number;
}

export interface ControllerDeps {
  options: ControllerOptions;
  /** CPU usage in per mille since the previous call */
  measureUsage: () => Promise<number>;
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

export interface ControllerStats {
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
}

/** The first threshold check after ready: soon, but past the start-up burst. */
export const FIRST_CHECK_DELAY_MS = 1000;

/** Extra time `close()` allows past flushTimeout before it stops waiting no matter what. */
const CLOSE_MARGIN_MS = 250;

export class ProfilingController {
  private currentState: ProfilerState = 'idle';
  private checkTimer?: NodeJS.Timeout;
  private firstCheckTimer?: NodeJS.Timeout;
  private sessionTimer?: NodeJS.Timeout;
  private uploadTimer?: NodeJS.Timeout;
  private session?: { reason: string; startedAt: number; endsAt?: number; windowStart: number };
  /** every window operation runs after the previous one: no overlap, no race */
  private chain: Promise<unknown> = Promise.resolve();
  private checking = false;
  private readonly logLimiter = new LogLimiter();
  private readonly now: () => number;
  private readonly counters = { sessions: 0, windows: 0, profilesCollected: 0, samplesFolded: 0, samplerRestarts: 0, engineErrors: 0 };
  private lastError?: string;

  constructor(private readonly deps: ControllerDeps) {
    this.now = deps.now ?? Date.now;
  }

  get state(): ProfilerState {
    return this.currentState;
  }

  /**
   * At ready: with threshold 0, start the one session; otherwise take the baseline reading and
   * make the first comparison FIRST_CHECK_DELAY_MS later (or after checkInterval if shorter),
   * then every checkInterval. The usage of the start-up itself (loading modules, compiling) is
   * near 100 % in every process and would always trip the threshold, so it is not compared.
   */
  async ready(): Promise<void> {
    if (this.currentState === 'closed' || this.checkTimer) return;
    const { cpuThreshold, checkInterval } = this.deps.options;
    // Checks run in continuous mode too: they keep cpuUsage() current.
    this.checkTimer = setInterval(() => void this.check(), checkInterval);
    this.checkTimer.unref();
    if (cpuThreshold === 0) {
      this.start({ duration: Infinity, reason: 'cpuThreshold is 0 (continuous)' });
    } else if (checkInterval > FIRST_CHECK_DELAY_MS) {
      this.firstCheckTimer = setTimeout(() => void this.check(), FIRST_CHECK_DELAY_MS);
      this.firstCheckTimer.unref();
    }
    await this.deps.measureUsage().catch((error: unknown) => this.recordError('cpu_usage', 'could not read CPU usage', error));
  }

  /**
   * Compare usage with the threshold; start a session when busy and idle. Never rejects.
   * With threshold 0 the one continuous session was started by ready(): a check only measures
   * (after a manual stop(), profiling stays off until start()).
   */
  async check(): Promise<void> {
    if (this.checking || this.currentState === 'closed') return;
    this.checking = true;
    try {
      const usage = await this.deps.measureUsage();
      const { cpuThreshold } = this.deps.options;
      if (cpuThreshold > 0 && this.currentState === 'idle' && usage >= cpuThreshold) {
        this.start({ reason: `CPU usage ${usage}‰ >= cpuThreshold ${cpuThreshold}‰` });
      }
    } catch (error) {
      this.recordError('cpu_usage', 'could not read CPU usage', error);
    } finally {
      this.checking = false;
    }
  }

  /**
   * Start a session now. Returns false (and changes nothing) when one is already running,
   * after close, or when the engine refuses to start (logged, counted in stats).
   */
  start(options: StartOptions = {}): boolean {
    if (this.currentState !== 'idle') return false;
    const duration = options.duration ?? this.deps.options.profilingDuration;
    const reason = options.reason ?? 'started manually';
    try {
      this.deps.profiler.start();
    } catch (error) {
      this.counters.engineErrors++;
      this.recordError('engine_start', 'the profiler could not start; the service is not affected', error);
      return false;
    }
    const startedAt = this.now();
    const endsAt = Number.isFinite(duration) ? startedAt + duration : undefined;
    this.session = { reason, startedAt, endsAt, windowStart: startedAt };
    this.currentState = 'profiling';
    this.counters.sessions++;
    this.deps.logger.info(
      { reason, duration: endsAt === undefined ? 'until close' : formatDuration(duration) },
      `continuous profiling: session started (${reason})`,
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
    const remaining = (): number => Math.max(0, deadline - this.now());
    const closeAll = last.then(() => Promise.all(this.deps.exporters.map((e) => e.close(remaining()))));
    await raceTimeout(closeAll, flushTimeout + CLOSE_MARGIN_MS);
  }

  stats(): ControllerStats {
    const s = this.session;
    return {
      state: this.currentState,
      ...this.counters,
      lastError: this.lastError,
      currentSession: s && {
        reason: s.reason,
        startedAt: new Date(s.startedAt).toISOString(),
        endsAt: s.endsAt === undefined ? undefined : new Date(s.endsAt).toISOString(),
      },
    };
  }

  /** One window: capture now, encode, hand to every exporter (not awaited: never blocks). */
  private flush(): Promise<void> {
    return this.enqueue(async () => {
      const session = this.session;
      if (!session) return;
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

  private logRateLimited(kind: string, level: 'warn' | 'error', fields: Record<string, unknown>, message: string): void {
    const suppressed = this.logLimiter.admit(kind);
    if (suppressed === undefined) return;
    this.deps.logger[level](suppressed > 0 ? { ...fields, suppressed } : fields, message);
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
