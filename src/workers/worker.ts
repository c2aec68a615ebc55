/**
 * The entry point for code that runs in a worker thread: `fastify-continuous-profiling/worker`.
 *
 *   profileWorker({ name: 'resize' });                       // once, at the top of the worker file
 *   withTaskLabels(task.labels, () => resize(task.image));   // per task, sync or async
 *
 * profileWorker() makes this thread take part in the main thread's sessions (protocol.ts): its
 * own @datadog/pprof time engine (worker-time.ts; V8 has one profiler per isolate, so each thread
 * samples itself) starts and stops with the main thread's session, and each window it cuts goes
 * to the main thread, merged there into the same upload with `thread=<name>` on every sample; its
 * heap sampler (worker-heap.ts) runs while the main thread's does, and its snapshots join the
 * main thread's heap profiles the same way. This file is the channel between them and the tasks.
 * Nothing here throws into the worker's tasks: engine failures are reported to the main thread.
 */
import { BroadcastChannel, isMainThread, receiveMessageOnPort, threadId } from 'node:worker_threads';
import { sanitizeLabelValue } from '../pyroscope-rules';
import { asMainMessage, CHANNEL_NAME, PROTOCOL_VERSION, type MainMessage, type WorkerMessage } from './protocol';
import type { TaskLabels, WorkerLabels } from './task-labels';
import { WorkerHeap } from './worker-heap';
import { WorkerTime } from './worker-time';

export type { TaskLabels } from './task-labels';

export interface ProfileWorkerOptions {
  /**
   * The `thread` label of this worker's samples; default `worker-<threadId>`. Give the workers of
   * one pool the same name (e.g. 'resize'): each distinct value is one more Pyroscope series.
   */
  name?: string;
}

class WorkerParticipant {
  private readonly channel = new BroadcastChannel(CHANNEL_NAME);
  private readonly time: WorkerTime;
  private readonly heap: WorkerHeap;
  private closed = false;
  /**
   * As a task ends: a cut asked for during the task is answered now (a sync task holds the event
   * loop, and piscina puts an idle worker to sleep right after it), and an old piece or heap
   * snapshot goes unasked. Never throws: the task is over, there is nobody to tell.
   */
  readonly afterTask = (): void => {
    try {
      this.drain();
      this.heap.afterTask();
      this.time.afterTask();
    } catch {
      // the engine's trouble stays here
    }
  };

  constructor(readonly name: string) {
    const post = (message: WorkerMessage): void => this.channel.postMessage(message);
    this.time = new WorkerTime(name, post);
    this.heap = new WorkerHeap(name, post);
    this.channel.unref();
    this.channel.onmessage = (event: unknown) => this.receive((event as { data?: unknown }).data);
    // An exiting worker hands over what it sampled (a message posted here is still delivered).
    process.once('exit', () => this.leave());
    post({ v: PROTOCOL_VERSION, kind: 'join', threadId, name });
  }

  /** The labeler while the engine samples (withTaskLabels asks). */
  get labels(): WorkerLabels | undefined {
    return this.time.labels;
  }

  /** Whether tasks must call afterTask though no time session runs (the heap sampler refreshes its snapshot there). */
  get heapSampling(): boolean {
    return this.heap.sampling;
  }

  /**
   * Handles what the main thread said while this thread's event loop did not turn: an idle
   * piscina worker blocks in Atomics.wait between tasks, so a task's start is the first moment it
   * can answer a start or a cut. One native call when nothing is waiting.
   */
  drain(): void {
    if (this.closed) return;
    let entry: { message: unknown } | undefined;
    while ((entry = receiveMessageOnPort(this.channel as unknown as Parameters<typeof receiveMessageOnPort>[0])) !== undefined) {
      this.receive(entry.message);
    }
  }

  private receive(data: unknown): void {
    const message = asMainMessage(data);
    if (message === undefined) return;
    try {
      this.handle(message);
    } catch {
      // never let the profiler's trouble reach the worker's tasks (an uncaught error ends the thread)
    }
  }

  private handle(message: MainMessage): void {
    switch (message.kind) {
      case 'hello':
        this.channel.postMessage({ v: PROTOCOL_VERSION, kind: 'join', threadId, name: this.name } satisfies WorkerMessage);
        return;
      case 'start':
        if (!message.refused.includes(threadId)) this.time.start(message.session, message.settings);
        else this.time.refuse();
        return;
      case 'cut':
      case 'stop':
        this.time.answer('piece', message.session, message.cut, message.kind === 'stop');
        return;
      case 'heap-start':
      case 'heap-stop':
      case 'heap-ask':
        this.heap.handle(message);
    }
  }

  private leave(): void {
    this.heap.stop();
    try {
      this.time.leave();
    } catch {
      // exiting: nothing more to do
    }
    this.closed = true;
    this.channel.close();
  }
}

let participant: WorkerParticipant | undefined;

/**
 * Makes this worker thread take part in the main thread's profiling sessions. Call it once at
 * the top of the worker's file; later calls do nothing. Throws on the main thread (which the
 * plugin profiles) and for a name that is not a non-empty string.
 */
export function profileWorker(options: ProfileWorkerOptions = {}): void {
  if (isMainThread) {
    throw new TypeError('profileWorker() is for worker threads; the main thread is profiled by the fastify-continuous-profiling plugin');
  }
  const name = options?.name;
  if (name !== undefined && (typeof name !== 'string' || name.length === 0)) {
    throw new TypeError(`profileWorker: name must be a non-empty string, received ${JSON.stringify(name) ?? String(name)}`);
  }
  participant ??= new WorkerParticipant(sanitizeLabelValue(name ?? `worker-${threadId}`));
}

/**
 * Runs `fn` (sync or async: everything it awaits too) with the labels a task was sent with
 * (`app.profiler.taskLabels()` on the main thread), so this thread's samples for the task carry
 * the route that submitted it. Without a session, or with `labels` undefined, it just runs `fn`.
 */
export function withTaskLabels<T>(labels: TaskLabels | undefined, fn: () => T): T {
  const current = participant;
  if (current === undefined) return fn();
  current.drain();
  const labeler = current.labels;
  if (labeler === undefined && !current.heapSampling) return fn();
  let result: T | undefined;
  try {
    result = labeler === undefined ? fn() : labeler.run(labels, fn);
    return result;
  } finally {
    if (isPromiseLike(result)) result.then(current.afterTask, current.afterTask);
    else current.afterTask();
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
