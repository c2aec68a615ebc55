/**
 * The entry point for code that runs in a worker thread: `fastify-continuous-profiling/worker`.
 *
 *   profileWorker({ name: 'resize' });                       // once, at the top of the worker file
 *   withTaskLabels(task.labels, () => resize(task.image));   // per task, sync or async
 *
 * profileWorker() makes this thread take part in the main thread's sessions (protocol.ts): its
 * own @datadog/pprof time engine (V8 has one profiler per isolate, so each thread samples
 * itself) starts and stops with the main thread's session, and each window it cuts goes to the
 * main thread, merged there into the same upload with `thread=<name>` on every sample.
 * Nothing here throws into the worker's tasks: engine failures are reported to the main thread.
 */
import { BroadcastChannel, isMainThread, receiveMessageOnPort, threadId } from 'node:worker_threads';
import type { Profile } from 'pprof-format';
import { TimeProfiler } from '../profilers/time';
import { mergeIdenticalSamples } from '../profilers/transform';
import { sanitizeLabelValue } from '../pyroscope-rules';
import { asMainMessage, CHANNEL_NAME, PROTOCOL_VERSION, UNASKED_CUT, type MainMessage, type WorkerEngineSettings, type WorkerMessage } from './protocol';
import { WorkerLabels, type TaskLabels } from './task-labels';

export type { TaskLabels } from './task-labels';

export interface ProfileWorkerOptions {
  /**
   * The `thread` label of this worker's samples; default `worker-<threadId>`. Give the workers of
   * one pool the same name (e.g. 'resize'): each distinct value is one more Pyroscope series.
   */
  name?: string;
}

/** Sample periods a piece must span before it is cut (the engine's restart race; see shared-engine.ts). */
const MIN_PIECE_SAMPLE_PERIODS = 3;

/**
 * A task that ends with the thread's piece this much of a window old hands it over unasked. An
 * idle piscina worker sleeps in Atomics.wait and cannot answer the session's last cut: without
 * this, everything it sampled since its last answer would be lost at every session's end; with
 * it, at most a quarter window is (measured 2026-12: a window's worth of pool CPU missing from
 * the last upload otherwise). The cut costs the worker one engine restart per quarter window.
 */
const PUSH_AFTER_WINDOW_SHARE = 0.25;

/**
 * Windows without a word from the main thread after which the engine stops on its own: a main
 * thread that stopped asking (it closed) must not leave samples piling up here for ever.
 */
const SILENT_WINDOWS_BEFORE_STOP = 3;

interface Running {
  session: number;
  engine: TimeProfiler;
  labels: WorkerLabels;
  pieceStartedAt: number;
  minPieceMs: number;
  watchdog: NodeJS.Timeout;
  pushAfterMs: number;
}

class WorkerParticipant {
  private readonly channel = new BroadcastChannel(CHANNEL_NAME);
  private running: Running | undefined;
  private lastCut = 0;
  /** a session this thread could not start: not retried until the next one */
  private failedSession = -1;
  private closed = false;
  /**
   * As a task ends: a cut asked for during the task is answered now (a sync task holds the event
   * loop, and piscina puts an idle worker to sleep right after it), and an old piece goes unasked
   * (PUSH_AFTER_WINDOW_SHARE). Never throws: the task is over, there is nobody to tell.
   */
  readonly afterTask = (): void => {
    try {
      this.drain();
      const running = this.running;
      if (running !== undefined && performance.now() - running.pieceStartedAt >= running.pushAfterMs) {
        this.answer('piece', running.session, UNASKED_CUT, false);
      }
    } catch {
      // the engine's trouble stays here
    }
  };

  constructor(readonly name: string) {
    this.channel.unref();
    this.channel.onmessage = (event: unknown) => this.receive((event as { data?: unknown }).data);
    // An exiting worker hands over what it sampled (a message posted here is still delivered).
    process.once('exit', () => this.leave());
    this.post({ v: PROTOCOL_VERSION, kind: 'join', threadId, name });
  }

  /** The labeler while the engine samples (withTaskLabels asks). */
  get labels(): WorkerLabels | undefined {
    return this.running?.labels;
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
        this.post({ v: PROTOCOL_VERSION, kind: 'join', threadId, name: this.name });
        return;
      case 'start':
        if (!message.refused.includes(threadId)) this.start(message.session, message.settings);
        else if (this.running !== undefined) this.stopEngine(); // over maxWorkers: its samples would be dropped
        return;
      case 'cut':
        this.answer('piece', message.session, message.cut, false);
        return;
      case 'stop':
        this.answer('piece', message.session, message.cut, true);
    }
  }

  private start(session: number, settings: WorkerEngineSettings): void {
    if (this.running?.session === session || this.failedSession === session) return;
    if (this.running !== undefined) this.stopEngine(); // a stop that never came: that session is over
    const labels = new WorkerLabels(this.name, settings);
    const engine = new TimeProfiler({ sampleRate: settings.sampleRate, cpu: settings.collectCpuTime, wall: true, windowMs: settings.windowMs, labeler: labels, frameColumns: settings.frameColumns });
    try {
      engine.start();
    } catch (error) {
      this.failedSession = session;
      this.post({ v: PROTOCOL_VERSION, kind: 'failed', threadId, session, error: error instanceof Error ? error.message : String(error) });
      return;
    }
    const watchdog = setTimeout(() => this.stopEngine(), settings.windowMs * SILENT_WINDOWS_BEFORE_STOP);
    watchdog.unref();
    this.running = {
      session,
      engine,
      labels,
      pieceStartedAt: performance.now(),
      minPieceMs: (MIN_PIECE_SAMPLE_PERIODS * 1000) / settings.sampleRate,
      watchdog,
      pushAfterMs: settings.windowMs * PUSH_AFTER_WINDOW_SHARE,
    };
  }

  /** The samples since the previous cut, to the main thread; `last`: and the engine stops. */
  private answer(kind: 'piece' | 'leave', session: number, cut: number, last: boolean): void {
    const running = this.running;
    if (cut !== UNASKED_CUT) {
      this.lastCut = cut;
      running?.watchdog.refresh(); // the main thread still asks
    }
    if (running === undefined || running.session !== session) {
      this.post({ v: PROTOCOL_VERSION, kind, threadId, session, cut, labelsDropped: 0 });
      return;
    }
    let profile: Uint8Array | undefined;
    try {
      if (last) profile = encodePiece(this.stopEngine());
      else if (performance.now() - running.pieceStartedAt >= running.minPieceMs) {
        // a younger piece is not cut: its samples go with the next one
        running.pieceStartedAt = performance.now();
        profile = encodePiece(running.engine.collectRaw());
      }
    } finally {
      this.post({ v: PROTOCOL_VERSION, kind, threadId, session, cut, profile, labelsDropped: running.labels.takeDropped() });
    }
  }

  private stopEngine(): ReturnType<TimeProfiler['stopRaw']> {
    const running = this.running;
    if (running === undefined) return undefined;
    this.running = undefined;
    clearTimeout(running.watchdog);
    return running.engine.stopRaw();
  }

  private leave(): void {
    try {
      if (this.running !== undefined) this.answer('leave', this.running.session, this.lastCut, true);
      else this.post({ v: PROTOCOL_VERSION, kind: 'leave', threadId, session: -1, cut: this.lastCut, labelsDropped: 0 });
    } catch {
      // exiting: nothing more to do
    }
    this.closed = true;
    this.channel.close();
  }

  private post(message: WorkerMessage): void {
    this.channel.postMessage(message);
  }
}

/**
 * A piece as bytes for the main thread, its identical samples summed first: the engine emits one
 * sample per labelled tick, and summing here, off the main thread, is what keeps the main
 * thread's merge small (bench/worker-cost.js: a busy worker's 15 s window decoded and merged in
 * 41 ms on the main thread unsummed).
 */
function encodePiece(profile: Profile | undefined): Uint8Array | undefined {
  if (profile === undefined) return undefined;
  mergeIdenticalSamples(profile);
  return profile.encode();
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
  if (labeler === undefined) return fn();
  let result: T | undefined;
  try {
    result = labeler.run(labels, fn);
    return result;
  } finally {
    if (isPromiseLike(result)) result.then(current.afterTask, current.afterTask);
    else current.afterTask();
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
