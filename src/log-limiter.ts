/**
 * Rate limit for repeated log lines: at most one message per kind per interval (a minute by
 * default), and the next one that gets through says how many were held back in between.
 *
 * A dead Pyroscope makes every upload fail the same way; without this, a service would log the
 * same warning every few seconds for as long as the outage lasts.
 *
 *   const limiter = new LogLimiter();
 *   const suppressed = limiter.admit(`http_${status}`);
 *   if (suppressed !== undefined) logger.warn({ status, suppressed }, 'upload failed');
 */

export interface LogLimiterOptions {
  /** minimum time between two messages of the same kind; default 60 000 ms */
  intervalMs?: number;
  /** clock, injectable for tests; default Date.now */
  now?: () => number;
  /** kinds remembered at most (memory bound); the least recently logged is forgotten first; default 100 */
  maxKinds?: number;
}

interface KindState {
  lastLoggedAt: number;
  suppressed: number;
}

export const DEFAULT_LOG_INTERVAL_MS = 60_000;
const DEFAULT_MAX_KINDS = 100;

export class LogLimiter {
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #maxKinds: number;
  /** insertion order = order of last logging (re-inserted on each logged message) */
  readonly #kinds = new Map<string, KindState>();

  constructor(options: LogLimiterOptions = {}) {
    this.#intervalMs = options.intervalMs ?? DEFAULT_LOG_INTERVAL_MS;
    this.#now = options.now ?? (() => Date.now()); // read late: Jest fake timers replace Date
    this.#maxKinds = Math.max(1, options.maxKinds ?? DEFAULT_MAX_KINDS);
  }

  /**
   * Ask whether a message of `kind` may be logged now.
   * Returns the number of messages of this kind held back since the last one logged (0 for the
   * first), or `undefined` when this one must be held back (it is then counted).
   */
  admit(kind: string): number | undefined {
    const now = this.#now();
    const state = this.#kinds.get(kind);
    if (state !== undefined && now - state.lastLoggedAt < this.#intervalMs) {
      state.suppressed += 1;
      return undefined;
    }
    const suppressed = state?.suppressed ?? 0;
    this.#remember(kind, { lastLoggedAt: now, suppressed: 0 });
    return suppressed;
  }

  /** Messages held back and not yet reported, per kind (e.g. to summarise them on close). */
  suppressedCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const [kind, state] of this.#kinds) if (state.suppressed > 0) counts[kind] = state.suppressed;
    return counts;
  }

  /** Forget every kind: the next message of each kind is logged. */
  reset(): void {
    this.#kinds.clear();
  }

  #remember(kind: string, state: KindState): void {
    this.#kinds.delete(kind);
    this.#kinds.set(kind, state);
    if (this.#kinds.size > this.#maxKinds) {
      const oldest = this.#kinds.keys().next().value as string;
      this.#kinds.delete(oldest);
    }
  }
}
