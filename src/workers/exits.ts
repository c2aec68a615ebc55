/**
 * Tells the relay when a worker thread this thread created was terminated. A terminated worker
 * (`worker.terminate()`, piscina's `idleTimeout` and `destroy()`) runs none of its own code on
 * the way out (checked on Node 20 and 24: its `process.on('exit')` handlers do not run), so it
 * cannot say goodbye; only its creator sees it go. `process.on('worker')` announces every Worker
 * created in this thread from now on; its `threadId` is read then, because a Worker reads -1
 * once it has exited. A worker that exits by itself posts its leave first, but the leave and the
 * exit reach this thread by different queues: `settled` is called `graceMs` after the exit, and
 * the relay takes a thread still taking part by then for terminated.
 * Workers created before the relay, or by another worker, are not seen: the roster's staleness
 * (roster.ts) still frees their slots. (Jest's sandboxed `process` never gets the event: the
 * test runs in a child process.)
 */
import type { Worker } from 'node:worker_threads';

export interface WorkerExitsOptions {
  graceMs: number;
  /** whether the workers were sampling (a session ran) as one exited */
  sampling: () => boolean;
  /** `graceMs` after a worker's exit, with `sampling` as it was at the exit */
  settled: (threadId: number, sampling: boolean) => void;
}

export class WorkerExits {
  private closed = false;
  private readonly onWorker = (worker: Worker): void => {
    const { threadId } = worker;
    worker.once('exit', () => {
      if (this.closed) return;
      const sampling = this.options.sampling();
      setTimeout(() => {
        if (!this.closed) this.options.settled(threadId, sampling);
      }, this.options.graceMs).unref();
    });
  };

  constructor(private readonly options: WorkerExitsOptions) {
    process.on('worker', this.onWorker);
  }

  /** No more Workers are watched (those watched already are ignored from now on). */
  close(): void {
    this.closed = true;
    process.off('worker', this.onWorker);
  }
}
