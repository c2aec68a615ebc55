/**
 * The one heap sampler of the process (shared-engine.ts shares the time engine; this, the heap),
 * shared by counting holders: a heap profile is a snapshot of what is live, so any holder can
 * read it at any time without disturbing another. The worker threads' heap samplers run while it
 * does (src/workers/), and a snapshot of all threads is the main one merged with theirs.
 */
import type { Profile } from 'pprof-format';
import { HeapProfiler } from './heap';
import { mergeHeapSnapshots, type ThreadSource } from './threads';
import type { WindowProfile } from './time';

export class SharedHeap {
  private readonly sampler: HeapProfiler;
  private holders = 0;

  constructor(
    samplingIntervalBytes: number,
    frameColumns: boolean,
    private readonly threads: ThreadSource | undefined,
  ) {
    this.sampler = new HeapProfiler(samplingIntervalBytes, frameColumns);
  }

  get running(): boolean {
    return this.holders > 0;
  }

  /** Hold the sampler: the first holder starts it, and the workers' (throws when the main one cannot start). */
  acquire(): void {
    if (this.holders === 0) {
      this.sampler.start();
      this.threads?.heap.start();
    }
    this.holders++;
  }

  /** Let go of the sampler: the last holder stops it, and the workers'. */
  release(): void {
    if (this.holders === 0) return;
    this.holders--;
    if (this.holders === 0) {
      this.sampler.release();
      this.threads?.heap.stop();
    }
  }

  /** What is live now in the main thread, sampled; undefined when nobody holds the sampler. */
  snapshot(): WindowProfile | undefined {
    return this.holders > 0 ? this.sampler.snapshot() : undefined;
  }

  /**
   * Asks the worker threads for their snapshots now (a bounded wait; never rejects): ask first,
   * then take snapshot(), so the two waits overlap. [] when no worker takes part or nobody holds
   * the sampler. `lastWindow`: the wait holds the process up (close awaits it).
   */
  askThreads(lastWindow = false): Promise<Profile[]> {
    return this.holders > 0 && this.threads !== undefined ? this.threads.heap.snapshots(lastWindow) : Promise.resolve([]);
  }

  /** The main thread's snapshot and the workers' as one heap profile (`thread` on every sample once a worker took part). */
  merge(main: WindowProfile | undefined, workers: readonly Profile[]): WindowProfile | undefined {
    return main === undefined ? undefined : mergeHeapSnapshots(main, workers, this.threads?.mainThreadLabel());
  }

  /** What is live now in every thread (pull mode's /heap and capture()). */
  async snapshotAll(): Promise<WindowProfile | undefined> {
    const workers = this.askThreads();
    const main = this.snapshot();
    return this.merge(main, await workers);
  }
}
