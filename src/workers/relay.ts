/**
 * The main thread's side of worker-thread profiling: to the shared engine (shared-engine.ts) the
 * participating workers are one more source of samples, cut at the same moments as the main
 * thread's engine and handed to the same consumers (the push session, pull captures).
 *
 * - A worker joins (profileWorker() ran there); at most `maxWorkers` take part, later ones are
 *   refused and counted (each thread's samples are one more series in Pyroscope).
 * - The first consumer in starts the workers' engines, the last one out stops them.
 * - A cut asks every worker for its piece and waits at most `replyTimeoutMs` for those that
 *   answered the previous one. A worker answers when its event loop turns or when a task starts
 *   (withTaskLabels reads the channel synchronously): an idle piscina worker sleeps in
 *   Atomics.wait and cannot answer, but it has sampled nothing worth waiting for either. A piece
 *   that comes later is not lost: it goes to the consumers in at its arrival (its samples land in
 *   the next window), or is dropped and counted when none is.
 * - A worker that exits sends its last piece. One that is terminated (piscina ends idle threads
 *   that way) cannot: when this thread created it (after the relay existed), its `exit` tells
 *   (exits.ts) and, with no leave heard by then, what it sampled since its last piece is counted
 *   lost and its slot freed at once; otherwise, unheard of for a few windows (roster.ts), it is
 *   forgotten and its slot freed; if it was only asleep, its next piece brings it back.
 * - Heap: while the main thread's heap sampler runs, the workers' run too (heap-snapshots.ts: a
 *   window takes each worker's latest snapshot).
 * Nothing here throws or rejects: bad messages are ignored, failures counted in stats().
 */
import { BroadcastChannel } from 'node:worker_threads';
import { Profile } from 'pprof-format';
import type { ThreadShare, ThreadSource } from '../profilers';
import type { MinimalLogger } from '../types';
import { WorkerRoster } from './roster';
import { MAIN_THREAD, THREAD_LABEL } from '../labels/label-set';
import { CutWaits } from './cut-waits';
import { WorkerExits } from './exits';
import { RelayHeaps } from './heap-snapshots';
import { asWorkerMessage, CHANNEL_NAME, PROTOCOL_VERSION, UNASKED_CUT, type MainMessage, type WorkerEngineSettings, type WorkerMessage } from './protocol';

export interface WorkerRelayOptions {
  maxWorkers: number;
  settings: WorkerEngineSettings;
  /** the heap sampler's bytes between samples (heapSamplingInterval) */
  heapIntervalBytes: number;
  /** how long a cut waits for the workers' pieces */
  replyTimeoutMs: number;
  logger: MinimalLogger;
}

export interface WorkerStats {
  /** workers taking part now */
  workers: number;
  /** workers that called profileWorker() and were admitted, since start */
  workersJoined: number;
  /** workers refused because maxWorkers were taking part */
  workersRefused: number;
  /** workers that exited (their last piece delivered) */
  workersLeft: number;
  /** workers that stopped answering (terminated, stuck) and are no longer waited for */
  workersLost: number;
  /** workers terminated during a session (worker.terminate(), piscina's idleTimeout): what each sampled since its last piece is lost */
  workerPiecesLost: number;
  /** worker engines that could not start */
  workerStartFailures: number;
  /** times a window went without a worker's piece after waiting for it (busy in a long task, stuck, gone) */
  workerCutsMissed: number;
  /** pieces that missed their cut's wait (delivered with the next window) */
  workerPiecesLate: number;
  /** pieces (and heap snapshots) lost: arrived when no consumer was in, or unreadable */
  workerPiecesDropped: number;
  /** task label entries refused in workers (bad name or value, over the per-sample limit) */
  workerLabelsDropped: number;
  /** heap profiles that carried a worker's earlier snapshot (it could not answer: asleep between piscina tasks, in a long task) */
  workerHeapsEarlier: number;
  /** heap profiles without a participating worker's heap (no snapshot from it yet: asleep since its sampler started, or the sampler failed) */
  workerHeapsMissing: number;
}

const MAIN_THREAD_LABEL = Object.freeze({ name: THREAD_LABEL, value: MAIN_THREAD });

/**
 * The main thread's end of the channel: what it says, and where what it hears goes. Posting
 * never throws: it runs inside the engine's join, cut and heap calls (a throw in the session's
 * start would leave the main engine running with nobody to stop it); a failed post is logged
 * (`failed`), and the workers it missed are counted by the waits that go unanswered.
 */
class MainChannel {
  private readonly channel = new BroadcastChannel(CHANNEL_NAME);
  private closed = false;

  constructor(
    onMessage: (message: WorkerMessage) => void,
    private readonly failed: (error: unknown) => void,
  ) {
    this.channel.unref();
    this.channel.onmessage = (event: unknown) => {
      const message = asWorkerMessage((event as { data?: unknown }).data);
      if (message !== undefined && !this.closed) onMessage(message);
    };
    // workers that joined before this relay existed join again
    this.post({ v: PROTOCOL_VERSION, kind: 'hello' });
  }

  post(message: MainMessage): void {
    if (this.closed) return;
    try {
      this.channel.postMessage(message);
    } catch (error) {
      this.failed(error);
    }
  }

  close(): void {
    this.closed = true;
    this.channel.close();
  }
}

/**
 * Session ids, unique in the process across registrations (a closed app's relay and the next
 * one's): a worker remembers the session it failed to start in, and must not take the next
 * registration's first session for it.
 */
let lastSession = Date.now();

/**
 * How long after a worker's `exit` its leave may still come (the leave is posted on the channel
 * before the thread ends; the two reach this thread by different queues): past it, no leave
 * means it was terminated.
 */
const LEAVE_GRACE_MS = 1000;

class RelayShare implements ThreadShare {
  readonly pieces: Profile[] = [];
}

/**
 * long: the threads' membership (join, refuse, forget, readmit), the cuts and the delivery of
 * their pieces share one roster, one set of waits and the session; split apart, each would reach
 * into the others' state. The heap part (heap-snapshots.ts) and exits (exits.ts) are apart.
 */
export class WorkerRelay implements ThreadSource {
  private readonly channel = new MainChannel(
    (message) => this.receive(message),
    (error) => this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'continuous profiling: a message to the worker threads could not be sent'),
  );
  private readonly roster: WorkerRoster;
  private readonly waits: CutWaits<Set<RelayShare>>;
  private readonly shares = new Set<RelayShare>();
  /** the workers' heap samplers and snapshots (heap-snapshots.ts) */
  readonly heap: RelayHeaps;
  private readonly exits = new WorkerExits({ graceMs: LEAVE_GRACE_MS, sampling: () => this.shares.size > 0, settled: (threadId, sampling) => this.terminated(threadId, sampling) });
  private session = 0;
  private cutCounter = 0;
  private closed = false;
  readonly counters = { startFailures: 0, missed: 0, late: 0, dropped: 0, labelsDropped: 0, piecesLost: 0 };

  constructor(private readonly options: WorkerRelayOptions) {
    this.roster = new WorkerRoster(options.maxWorkers, options.settings.windowMs, options.logger);
    this.waits = new CutWaits((threadId) => {
      this.counters.missed++;
      this.roster.heard(threadId, false); // the next cuts do not wait for it, until it answers again
    });
    const { settings, heapIntervalBytes, replyTimeoutMs, logger } = options;
    const heap = { intervalBytes: heapIntervalBytes, windowMs: settings.windowMs, frameColumns: settings.frameColumns };
    this.heap = new RelayHeaps({ post: (message) => this.channel.post(message), roster: this.roster, settings: heap, replyTimeoutMs, logger });
  }

  /** `thread="main"` on the main thread's samples once a worker took part; before, no label at all. */
  mainThreadLabel(): { name: string; value: string } | undefined {
    return this.roster.counters.joined > 0 ? MAIN_THREAD_LABEL : undefined;
  }

  /** A consumer joins: the first starts the workers, a later one cuts first (earlier samples are not its). */
  join(): RelayShare {
    const share = new RelayShare();
    if (this.shares.size === 0) {
      this.session = ++lastSession;
      this.roster.expectAll();
      this.broadcastStart();
    } else {
      void this.cut('cut', new Set(this.shares));
    }
    this.shares.add(share);
    return share;
  }

  /** The share's worker pieces up to now (after a bounded wait); sampling goes on. */
  async take(share: ThreadShare): Promise<Profile[]> {
    const own = share as RelayShare;
    if (this.shares.has(own)) await this.cut('cut', new Set(this.shares));
    return own.pieces.splice(0);
  }

  /** The share's worker pieces up to now, and it leaves; the last one out stops the workers. */
  async leave(share: ThreadShare): Promise<Profile[]> {
    const own = share as RelayShare;
    if (!this.shares.has(own)) return own.pieces.splice(0);
    const recipients = new Set(this.shares);
    this.shares.delete(own);
    await this.cut(this.shares.size === 0 ? 'stop' : 'cut', recipients);
    return own.pieces.splice(0);
  }

  stats(): WorkerStats {
    return workerStats(this.roster, this.counters, this.heap.counters);
  }

  /** At the plugin's close, after the last session: pending waits end now, the channel closes. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.waits.endAll();
    this.heap.close();
    this.exits.close();
    this.channel.close();
  }

  /** Ask the workers for their pieces; resolves when those waited for answered, or after replyTimeoutMs. */
  private cut(kind: 'cut' | 'stop', recipients: Set<RelayShare>): Promise<void> {
    for (const threadId of this.roster.stale()) this.forget(threadId, 'lost');
    if (this.roster.size === 0 && kind === 'cut') return Promise.resolve();
    const id = ++this.cutCounter;
    this.channel.post({ v: PROTOCOL_VERSION, kind, session: this.session, cut: id });
    if (this.closed) return Promise.resolve();
    // the last window's wait (close awaits it) keeps the process up for its bounded time
    return this.waits.wait(id, this.roster.answering(), recipients, this.options.replyTimeoutMs, kind === 'stop');
  }

  private receive(message: WorkerMessage): void {
    try {
      this.handle(message);
    } catch (error) {
      this.options.logger.debug({ err: error instanceof Error ? error.message : String(error) }, 'continuous profiling: a worker message could not be handled');
    }
  }

  private handle(message: WorkerMessage): void {
    switch (message.kind) {
      case 'join':
        if (this.roster.known(message.threadId)) return;
        this.roster.admit(message.threadId, message.name, true);
        this.broadcastState();
        return;
      case 'failed':
        this.counters.startFailures++;
        this.options.logger.warn({ threadId: message.threadId, err: message.error }, 'continuous profiling: a worker thread could not start its profiler; it is left out of this session');
        this.roster.heard(message.threadId, false);
        this.waits.release(message.threadId);
        return;
      case 'piece':
      case 'leave':
        this.deliver(message);
        return;
      case 'heap':
        this.heap.receive(message);
    }
  }

  /** A worker this thread created exited LEAVE_GRACE_MS ago; no leave came: it was terminated (`sampling`: during a session). */
  private terminated(threadId: number, sampling: boolean): void {
    if (this.closed || !this.roster.has(threadId)) return; // its leave came
    if (sampling) this.counters.piecesLost++;
    this.options.logger.info({ threadId }, 'continuous profiling: a worker thread was terminated; what it sampled since its last piece is lost');
    this.forget(threadId, 'lost');
  }

  private deliver(message: Extract<WorkerMessage, { kind: 'piece' | 'leave' }>): void {
    const { threadId } = message;
    this.counters.labelsDropped += message.labelsDropped;
    if (!this.roster.has(threadId) && !(message.kind === 'piece' && message.profile !== undefined && this.readmit(threadId))) {
      // a refused thread, or a forgotten one with no room to come back: its samples are not taken
      if (message.profile !== undefined) this.counters.dropped++;
      return;
    }
    const unasked = message.kind === 'piece' && message.cut === UNASKED_CUT;
    // a leave answers whichever cut waits for it; a piece the cut it names
    const answered = unasked ? undefined : this.waits.answer(threadId, message.kind === 'leave' ? 'oldest' : message.cut);
    // an answer to the latest cut, even late, says the worker answers again
    this.roster.heard(threadId, unasked ? undefined : answered !== undefined || message.cut === this.cutCounter);
    if (message.profile !== undefined) {
      // a late or unasked piece belongs to the window in progress
      if (answered === undefined && !unasked && message.kind === 'piece') this.counters.late++;
      handOut(message.profile, answered ?? this.shares, this.counters);
    }
    if (message.kind === 'leave') this.forget(threadId, 'left');
  }

  /** A forgotten thread was only asleep: back in when there is room, else told not to sample. */
  private readmit(threadId: number): boolean {
    if (this.shares.size === 0) return false;
    if (this.roster.admit(threadId, `worker-${threadId}`, false)) {
      this.heap.announce();
      return true;
    }
    this.broadcastStart();
    return false;
  }

  /** A worker left or is gone: no cut waits for it any more; a refused thread may take its slot. */
  private forget(threadId: number, why: 'left' | 'lost'): void {
    const { forgotten, promoted } = this.roster.forget(threadId, why);
    if (forgotten) {
      this.waits.release(threadId);
      this.heap.forget(threadId);
    }
    if (promoted) this.broadcastState();
  }

  /** What the threads must run now (a thread joined or was promoted): the session's engine, the heap sampler. */
  private broadcastState(): void {
    if (this.shares.size > 0) this.broadcastStart();
    this.heap.announce();
  }

  private broadcastStart(): void {
    this.channel.post({ v: PROTOCOL_VERSION, kind: 'start', session: this.session, refused: this.roster.refusedIds(), settings: this.options.settings });
  }
}

type RelayCounters = WorkerRelay['counters'];

function workerStats(roster: WorkerRoster, c: RelayCounters, heaps: RelayHeaps['counters']): WorkerStats {
  const r = roster.counters;
  return {
    workers: roster.size,
    workersJoined: r.joined,
    workersRefused: r.refused,
    workersLeft: r.left,
    workersLost: r.lost,
    workerPiecesLost: c.piecesLost,
    workerStartFailures: c.startFailures + heaps.failures,
    workerCutsMissed: c.missed,
    workerPiecesLate: c.late,
    workerPiecesDropped: c.dropped + heaps.unreadable,
    workerLabelsDropped: c.labelsDropped,
    workerHeapsEarlier: heaps.earlier,
    workerHeapsMissing: heaps.missing,
  };
}

/** A piece to every recipient (all share one decoded profile: nobody changes it), or dropped and counted. */
function handOut(bytes: Uint8Array, recipients: ReadonlySet<RelayShare>, counters: RelayCounters): void {
  const profile = decode(bytes);
  if (profile !== undefined && recipients.size > 0) for (const share of recipients) share.pieces.push(profile);
  else counters.dropped++;
}

function decode(bytes: Uint8Array): Profile | undefined {
  try {
    return Profile.decode(bytes);
  } catch {
    return undefined;
  }
}
