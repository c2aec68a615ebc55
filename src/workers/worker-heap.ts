/**
 * A participating worker's heap sampler (worker.ts owns the channel; this is its heap part).
 * V8's sampling heap profiler is per isolate, like the time profiler: a worker's allocations are
 * seen only by a sampler started in that worker (checked on Node 20 and 26: a worker's
 * allocating function shows in its own heap profile and not in the main thread's).
 *
 * The sampler runs while some relay holds it (heap-start .. heap-stop: the main thread's heap
 * sampler runs, for sessions, between sessions when a heap or memory trigger is on, or for pull
 * endpoints). Each `heap-ask` is answered with what is live now, every sample labelled
 * `thread=<name>`. An idle piscina worker sleeps in Atomics.wait and cannot answer; its heap
 * does not change while it sleeps either, so a task that ends with its last snapshot a quarter
 * window old sends a fresh one unasked, and the main thread uses the latest it has.
 */
import { threadId } from 'node:worker_threads';
import { HeapProfiler } from '../profilers/heap';
import { labelUnlabelledThreads } from '../profilers/threads';
import { THREAD_LABEL } from '../labels/label-set';
import { PROTOCOL_VERSION, UNASKED_CUT, type MainMessage, type WorkerHeapSettings, type WorkerMessage } from './protocol';

/** As PUSH_AFTER_WINDOW_SHARE in worker-time.ts: how old a snapshot may be when a task ends. */
const SNAPSHOT_AFTER_WINDOW_SHARE = 0.25;

type HeapMessage = Extract<MainMessage, { kind: 'heap-start' | 'heap-stop' | 'heap-ask' }>;

export class WorkerHeap {
  private sampler: HeapProfiler | undefined;
  /** the relays holding the sampler */
  private readonly holders = new Set<number>();
  private sentAt = 0;
  private refreshAfterMs = Number.POSITIVE_INFINITY;

  constructor(
    private readonly name: string,
    private readonly post: (message: WorkerMessage) => void,
  ) {}

  get sampling(): boolean {
    return this.sampler !== undefined;
  }

  handle(message: HeapMessage): void {
    if (message.kind === 'heap-ask') this.answer(message.ask);
    else if (message.kind === 'heap-stop') {
      this.holders.delete(message.holder);
      if (this.holders.size === 0) this.stop();
    } else if (message.refused.includes(threadId)) {
      // over maxWorkers for that relay: nobody takes this thread's snapshots
      this.holders.delete(message.holder);
      if (this.holders.size === 0) this.stop();
    } else this.start(message.holder, message.settings);
  }

  /** At a task's end: a fresh snapshot when the last one sent is a quarter window old. */
  afterTask(): void {
    if (this.sampler !== undefined && performance.now() - this.sentAt >= this.refreshAfterMs) this.answer(UNASKED_CUT);
  }

  /** The thread exits: its heap goes with it (the main thread forgets its snapshot at its leave). */
  stop(): void {
    const sampler = this.sampler;
    this.sampler = undefined;
    this.holders.clear();
    sampler?.release();
  }

  private start(holder: number, settings: WorkerHeapSettings): void {
    this.holders.add(holder);
    if (this.sampler !== undefined) return;
    const sampler = new HeapProfiler(settings.intervalBytes, settings.frameColumns);
    try {
      sampler.start();
    } catch (error) {
      this.holders.clear();
      this.post({ v: PROTOCOL_VERSION, kind: 'heap', threadId, ask: UNASKED_CUT, error: messageOf(error) });
      return;
    }
    this.sampler = sampler;
    this.sentAt = performance.now();
    this.refreshAfterMs = settings.windowMs * SNAPSHOT_AFTER_WINDOW_SHARE;
  }

  private answer(ask: number): void {
    let profile: Uint8Array | undefined;
    let error: string | undefined;
    try {
      const snapshot = this.sampler?.snapshot()?.profile;
      if (snapshot !== undefined) {
        labelUnlabelledThreads(snapshot, THREAD_LABEL, this.name);
        profile = snapshot.encode();
      }
    } catch (caught) {
      error = messageOf(caught);
    }
    this.sentAt = performance.now();
    this.post({ v: PROTOCOL_VERSION, kind: 'heap', threadId, ask, profile, ...(error === undefined ? {} : { error }) });
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
