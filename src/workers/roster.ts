/**
 * Which worker threads take part (at most maxWorkers), which were refused, and which the next
 * cut waits for: the relay's bookkeeping of threads (relay.ts), with its counters.
 */
import type { MinimalLogger } from '../types';

/** Windows without a word from a worker after which it is forgotten (at least STALE_MIN_MS). */
const STALE_AFTER_WINDOWS = 4;
const STALE_MIN_MS = 60_000;

/** Refused thread ids kept per slot: enough to tell each not to sample; past it they are not told (their pieces are dropped, counted). */
const REFUSED_IDS_PER_SLOT = 16;

interface Participant {
  name: string;
  /** answered the last cut in time (or just joined): the next cut waits for it */
  answering: boolean;
  heardAt: number;
}

export interface RosterCounters {
  joined: number;
  refused: number;
  left: number;
  lost: number;
}

export class WorkerRoster {
  readonly counters: RosterCounters = { joined: 0, refused: 0, left: 0, lost: 0 };
  private readonly admitted = new Map<number, Participant>();
  /** told not to sample (over maxWorkers), longest-refused first */
  private readonly refused = new Set<number>();
  private readonly staleMs: number;

  constructor(
    private readonly maxWorkers: number,
    windowMs: number,
    private readonly logger: MinimalLogger,
  ) {
    this.staleMs = Math.max(STALE_MIN_MS, STALE_AFTER_WINDOWS * windowMs);
  }

  get size(): number {
    return this.admitted.size;
  }

  has(threadId: number): boolean {
    return this.admitted.has(threadId);
  }

  known(threadId: number): boolean {
    return this.admitted.has(threadId) || this.refused.has(threadId);
  }

  /** The threads taking part. */
  ids(): number[] {
    return [...this.admitted.keys()];
  }

  refusedIds(): number[] {
    return [...this.refused];
  }

  /** The threads a cut waits for. */
  answering(): Set<number> {
    return new Set([...this.admitted].filter(([, p]) => p.answering).map(([threadId]) => threadId));
  }

  /** A new session: every thread taking part is waited for at its first cut. */
  expectAll(): void {
    for (const p of this.admitted.values()) p.answering = true;
  }

  /** Takes the thread in when there is room (`join`: counted as joined); otherwise refuses it (counted, logged). */
  admit(threadId: number, name: string, join: boolean): boolean {
    if (this.admitted.size < this.maxWorkers) {
      this.admitted.set(threadId, { name, answering: true, heardAt: performance.now() });
      if (join) this.counters.joined++;
      return true;
    }
    this.counters.refused++;
    if (this.refused.size < this.maxWorkers * REFUSED_IDS_PER_SLOT) this.refused.add(threadId);
    this.logger.warn({ threadId, maxWorkers: this.maxWorkers }, 'continuous profiling: maxWorkers worker threads take part already; this one is not profiled');
    return false;
  }

  /** A word from the thread; `answering` (when known) says whether the next cut should wait for it. */
  heard(threadId: number, answering: boolean | undefined): void {
    const p = this.admitted.get(threadId);
    if (p === undefined) return;
    p.heardAt = performance.now();
    if (answering !== undefined) p.answering = answering;
  }

  /**
   * The thread left or is gone: its slot goes to the longest-refused thread, if any. Returns
   * whether it was taking part, and whether a refused thread came in (it must be told).
   */
  forget(threadId: number, why: 'left' | 'lost'): { forgotten: boolean; promoted: boolean } {
    if (!this.admitted.delete(threadId)) return { forgotten: false, promoted: false };
    this.counters[why]++;
    const [next] = this.refused;
    if (next === undefined) return { forgotten: true, promoted: false };
    this.refused.delete(next);
    this.admitted.set(next, { name: `worker-${next}`, answering: false, heardAt: performance.now() });
    this.counters.joined++;
    return { forgotten: true, promoted: true };
  }

  /** Threads unheard of for a while are taken for terminated (piscina ends idle threads so): their ids. */
  stale(): number[] {
    const now = performance.now();
    const ids = [...this.admitted].filter(([, p]) => now - p.heardAt >= this.staleMs).map(([threadId]) => threadId);
    for (const threadId of ids) {
      const name = this.admitted.get(threadId)?.name;
      this.logger.info({ threadId, worker: name }, 'continuous profiling: a worker thread has not answered for a while (terminated, or idle); its slot is freed');
    }
    return ids;
  }
}
