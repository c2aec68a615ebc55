/**
 * A participating worker's time engine (worker.ts owns the channel; this is its CPU and wall
 * part): its own @datadog/pprof time profiler (V8 has one profiler per isolate, so each thread
 * samples itself), started and stopped with the main thread's session, each cut handed over as a
 * piece with `thread=<name>` on every sample.
 */
import { threadId } from 'node:worker_threads';
import type { Profile } from 'pprof-format';
import { TimeProfiler } from '../profilers/time';
import { mergeIdenticalSamples } from '../profilers/transform';
import { PROTOCOL_VERSION, UNASKED_CUT, type WorkerEngineSettings, type WorkerMessage } from './protocol';
import { WorkerLabels } from './task-labels';

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

export class WorkerTime {
  private running: Running | undefined;
  private lastCut = 0;
  /** a session this thread could not start: not retried until the next one */
  private failedSession = -1;

  constructor(
    private readonly name: string,
    private readonly post: (message: WorkerMessage) => void,
  ) {}

  /** The labeler while the engine samples (withTaskLabels asks). */
  get labels(): WorkerLabels | undefined {
    return this.running?.labels;
  }

  start(session: number, settings: WorkerEngineSettings): void {
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

  /** Over maxWorkers: its samples would be dropped, so it does not sample. */
  refuse(): void {
    if (this.running !== undefined) this.stopEngine();
  }

  /** At a task's end: the piece goes unasked when it is a quarter window old (PUSH_AFTER_WINDOW_SHARE). */
  afterTask(): void {
    const running = this.running;
    if (running !== undefined && performance.now() - running.pieceStartedAt >= running.pushAfterMs) {
      this.answer('piece', running.session, UNASKED_CUT, false);
    }
  }

  /** The thread exits: its last piece, as its leave. */
  leave(): void {
    if (this.running !== undefined) this.answer('leave', this.running.session, this.lastCut, true);
    else this.post({ v: PROTOCOL_VERSION, kind: 'leave', threadId, session: -1, cut: this.lastCut, labelsDropped: 0 });
  }

  /** The samples since the previous cut, to the main thread; `last`: and the engine stops. */
  answer(kind: 'piece' | 'leave', session: number, cut: number, last: boolean): void {
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
