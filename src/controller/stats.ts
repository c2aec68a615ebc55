/**
 * What the controller counts and says: the counters, trigger readings, last error and latest
 * trigger behind `stats()`, and its log lines, rate-limited per kind (LogLimiter) so a failing
 * engine or a flapping trigger cannot flood the host's log.
 */
import type { CollectedWindow } from '../profilers';
import { NO_READINGS, type Readings, type TriggerCause } from '../triggers';
import type { MinimalLogger } from '../types';
import { LogLimiter } from '../log-limiter';

export type ProfilerState = 'idle' | 'profiling' | 'closed';

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

/** The running session as stats() shows it (times in ms since the epoch). */
export interface SessionView {
  reason: string;
  startedAt: number;
  endsAt?: number;
}

export type LogLevel = 'info' | 'warn' | 'error';

export class ControllerRecord {
  readonly counters = { sessions: 0, windows: 0, profilesCollected: 0, samplesFolded: 0, samplerRestarts: 0, engineErrors: 0 };
  /** the latest reading of every trigger, written at each check */
  readonly readings: Readings = { ...NO_READINGS };
  lastTrigger?: LastTrigger;
  private lastError?: string;
  private readonly logLimiter = new LogLimiter();

  constructor(private readonly logger: MinimalLogger) {}

  /** A failure of the profiling engine: counted in `engineErrors`, then recorded like any error. */
  engineError(kind: string, message: string, error: unknown): void {
    this.counters.engineErrors++;
    this.error(kind, message, error);
  }

  /** Kept as `lastError` and logged (rate-limited per kind). */
  error(kind: string, message: string, error: unknown): void {
    const text = error instanceof Error ? error.message : String(error);
    this.lastError = `${message}: ${text}`;
    this.log(kind, 'error', { err: text }, `continuous profiling: ${message}`);
  }

  log(kind: string, level: LogLevel, fields: Record<string, unknown>, message: string): void {
    const suppressed = this.logLimiter.admit(kind);
    if (suppressed === undefined) return;
    this.logger[level](suppressed > 0 ? { ...fields, suppressed } : fields, message);
  }

  /** One collected window: its profiles and what the engine had to fold or restart for it. */
  countWindow(collected: CollectedWindow): void {
    this.counters.windows++;
    this.counters.samplesFolded += collected.foldedSamples;
    if (collected.foldedSamples > 0) {
      this.log('samples_folded', 'warn', { folded: collected.foldedSamples }, 'continuous profiling: a profile exceeded Pyroscope\'s 16,000 samples; the smallest stacks were folded into "(other stacks)"');
    }
    if (collected.samplerRestarted === true) {
      this.counters.samplerRestarts++;
      this.log('sampler_restarted', 'warn', { samplerRestarts: this.counters.samplerRestarts }, 'continuous profiling: V8\'s sampler got stuck (two long windows without a single sample); the time profiler was restarted');
    }
    this.counters.profilesCollected += collected.profiles.length;
  }

  snapshot(state: ProfilerState, session: SessionView | undefined, heldBack: ControllerStats['sessionsHeldBack']): ControllerStats {
    return {
      state,
      ...this.counters,
      ...this.readings,
      lastError: this.lastError,
      currentSession: session && {
        reason: session.reason,
        startedAt: new Date(session.startedAt).toISOString(),
        endsAt: session.endsAt === undefined ? undefined : new Date(session.endsAt).toISOString(),
      },
      lastTrigger: this.lastTrigger && { ...this.lastTrigger },
      sessionsHeldBack: { ...heldBack },
    };
  }
}
