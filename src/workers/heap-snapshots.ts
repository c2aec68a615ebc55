/**
 * The workers' heap samplers and snapshots, main thread's side: the relay's heap part (relay.ts
 * owns the channel and the roster; worker-heap.ts is the other end). While the main thread's
 * sampler runs, every thread taking part runs its own (heap-start / heap-stop).
 *
 * A heap profile is a snapshot of what is live, so each window needs every thread's latest one,
 * not pieces: a window asks, waits a bounded time for the threads that answered the previous ask
 * in time, and takes the latest snapshot of every thread taking part.
 * A thread that could not answer (an idle piscina worker asleep in Atomics.wait, one in a long
 * task) gives the last snapshot it sent: while it sleeps its heap does not change, and each task
 * that ends sends a fresh one when the last is a quarter window old. Counted
 * (`workerHeapsEarlier`), so a reader knows a window carried an older snapshot; a thread with no
 * snapshot at all (asleep since its sampler started, or the sampler failed) is counted missing.
 * One decoded snapshot per thread is kept: memory is bounded by maxWorkers.
 */
import { Profile } from 'pprof-format';
import type { ThreadHeaps } from '../profilers';
import type { MinimalLogger } from '../types';
import { CutWaits } from './cut-waits';
import { PROTOCOL_VERSION, UNASKED_CUT, type MainMessage, type WorkerHeapSettings, type WorkerMessage } from './protocol';
import type { WorkerRoster } from './roster';

/** Ask and holder ids, unique in the process: every relay (one per registration) hears every answer. */
let lastId = Date.now();

export interface RelayHeapsOptions {
  post: (message: MainMessage) => void;
  roster: WorkerRoster;
  settings: WorkerHeapSettings;
  /** how long a window waits for the snapshots */
  replyTimeoutMs: number;
  logger: MinimalLogger;
}

interface Latest {
  profile: Profile;
  /** the ask it answered (UNASKED_CUT: sent at a task's end) */
  ask: number;
}

export class RelayHeaps implements ThreadHeaps {
  private readonly latest = new Map<number, Latest>();
  /** missed an ask: not waited for until it answers one again */
  private readonly slow = new Set<number>();
  private readonly waits = new CutWaits<undefined>((threadId) => this.slow.add(threadId));
  /** this relay, as a holder of the workers' samplers */
  private readonly holder = ++lastId;
  private on = false;
  private closed = false;
  readonly counters = { earlier: 0, missing: 0, unreadable: 0, failures: 0 };

  constructor(private readonly options: RelayHeapsOptions) {}

  /** The main thread's sampler started: the workers' start (earlier snapshots are not what is live now). */
  start(): void {
    this.on = true;
    this.latest.clear();
    this.slow.clear();
    this.announce();
  }

  /** The main thread's sampler stopped: the workers' stop (snapshots asked for before still come). */
  stop(): void {
    if (!this.on) return;
    this.on = false;
    this.options.post({ v: PROTOCOL_VERSION, kind: 'heap-stop', holder: this.holder });
  }

  /** Tells the threads taking part (a thread joined, was promoted or readmitted) to run their samplers, when they should. */
  announce(): void {
    if (this.on) this.options.post({ v: PROTOCOL_VERSION, kind: 'heap-start', holder: this.holder, refused: this.options.roster.refusedIds(), settings: this.options.settings });
  }

  /**
   * Asks the threads taking part for their snapshots, waits at most replyTimeoutMs for those
   * expected to answer, then gives the latest snapshot of each; never rejects. `keepAlive`: the
   * wait holds the process up (the last window's, which close() awaits).
   */
  async snapshots(keepAlive: boolean): Promise<Profile[]> {
    const participants = this.options.roster.ids();
    if (!this.on || this.closed || participants.length === 0) return [];
    const id = ++lastId;
    this.options.post({ v: PROTOCOL_VERSION, kind: 'heap-ask', ask: id });
    await this.waits.wait(id, new Set(participants.filter((t) => !this.slow.has(t))), undefined, this.options.replyTimeoutMs, keepAlive);
    const snapshots: Profile[] = [];
    for (const threadId of participants) {
      const latest = this.latest.get(threadId);
      if (latest === undefined) {
        this.counters.missing++;
        continue;
      }
      if (latest.ask !== id) this.counters.earlier++;
      snapshots.push(latest.profile);
    }
    return snapshots;
  }

  /** A thread's snapshot (none: its sampler is off); an answer to an ask ends that ask's wait for it. */
  receive(message: Extract<WorkerMessage, { kind: 'heap' }>): void {
    const { threadId, ask, profile: bytes } = message;
    const { roster, logger } = this.options;
    if (!roster.has(threadId)) return; // refused or forgotten: its heap is not taken
    roster.heard(threadId, undefined);
    if (message.error !== undefined) {
      this.counters.failures++;
      logger.warn({ threadId, err: message.error }, "continuous profiling: a worker thread's heap sampler failed; its heap is left out");
    }
    if (bytes === undefined) this.latest.delete(threadId);
    else {
      const profile = decode(bytes);
      if (profile === undefined) this.counters.unreadable++;
      else this.latest.set(threadId, { profile, ask });
    }
    if (ask === UNASKED_CUT) return;
    this.slow.delete(threadId);
    this.waits.answer(threadId, ask);
  }

  /** The thread left or is gone: its heap went with it. */
  forget(threadId: number): void {
    this.latest.delete(threadId);
    this.slow.delete(threadId);
    this.waits.release(threadId);
  }

  /** At close: the workers' samplers stop, pending waits end now. */
  close(): void {
    this.stop();
    this.closed = true;
    this.waits.endAll();
    this.latest.clear();
  }
}

function decode(bytes: Uint8Array): Profile | undefined {
  try {
    return Profile.decode(bytes);
  } catch {
    return undefined;
  }
}
