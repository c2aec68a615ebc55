/**
 * The main thread's side of worker-thread profiling (the worker's side is worker.ts, its own
 * entry point): the relay, and the `maxWorkers` option's bounds.
 */
export { WorkerRelay, type WorkerRelayOptions, type WorkerStats } from './relay';
export type { TaskLabels } from './task-labels';

/**
 * How long a window waits for the workers' pieces: a worker answers between two tasks, so a
 * task running longer than this sends its piece late (it goes with the next window). Never more
 * than half of flushTimeout, so close() still has time to upload the last window.
 */
export function workerReplyTimeout(flushTimeout: number): number {
  return Math.min(1000, flushTimeout / 2);
}
