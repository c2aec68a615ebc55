/**
 * The one V8 time profiler and the one heap sampler of the process, shared by every consumer:
 * the push session (EngineProfiler, driven by the controller) and pull captures (src/pull/).
 *
 * Why a shared engine and not "the capture starts and stops the profiler": V8 has ONE time
 * profiler per isolate, and `time.stop()` hands out everything sampled since the previous stop.
 * A capture that stopped/restarted the profiler on its own would steal the push window's samples
 * (and @pyroscope/nodejs's endpoints, which do that, crashed the process used next to its push
 * loop). So here the engine runs while at least one consumer has joined, and every cut
 * (`time.stop(true)`: the samples since the previous cut) is delivered to EVERY consumer that
 * is in at that moment:
 *
 *   push   |---- piece A ----|-- piece B --|---- piece C ----|   upload = A+B+C merged
 *   capture                  |-- piece B --|                     capture = B
 *                     capture joins     capture leaves (both cut)
 *
 * The push window keeps its cadence and loses no sample (its pieces are merged at its upload:
 * merge.ts), a capture gets exactly the samples of its own interval, and concurrent captures
 * each get theirs. When nobody else samples, the first consumer starts the engine and the last
 * one out stops it, so a capture with no push session runs the engine for its duration only.
 * With a single consumer (the usual push session) there is one piece per window: no merge.
 *
 * The heap sampler is shared too (`heap`, shared-heap.ts): by counting holders.
 */
import type { Profile } from 'pprof-format';
import { SharedHeap } from './shared-heap';
import { mergeThreadPieces, type ThreadShare, type ThreadSource } from './threads';
import { TimeProfiler, type SampleLabeler, type WindowProfile } from './time';

export interface SharedEngineOptions {
  sampleRate: number;
  heapSamplingInterval: number;
  /** record CPU time per sample (every consumer that wants the `cpu` view needs it) */
  collectCpuTime: boolean;
  windowMs: number;
  labeler?: SampleLabeler;
  /** keep each frame's column for source maps (FrameRewriter.wantsColumns) */
  frameColumns?: boolean;
  /** participating worker threads (src/workers/), cut with the main engine */
  threads?: ThreadSource;
}

/** One consumer's part of the time engine: the pieces cut since it last took them. */
export class TimeShare {
  /** the engine's profiles (all sample types) cut while this consumer was in */
  readonly pieces: Profile[] = [];
  /** a cut failed while this consumer was in (its samples are lost): thrown at its next take */
  failure?: { error: unknown };
  /** V8's sampler was found stuck and restarted during this share's current window */
  samplerRestarted = false;
  /** performance.now() of the last take (or the join) */
  since = performance.now();
  /** this consumer's part of the worker threads' samples */
  threads?: ThreadShare;
  /** the worker pieces asked for at the last take or the leave (see threadPieces) */
  threadsAsked?: Promise<Profile[]>;
}

/**
 * Sample periods a piece must span before it is cut. Cutting (time.stop(true)) again within
 * moments of a start or cut hits the V8 race that @datadog/pprof's `workaroundV8Bug` sleeps
 * around: the sampler gets stuck, and the engine's recovery then restarts V8's profiler in full
 * (seen: a capture joining a few ms after the session started, then 1.4-1.7 s of blocked event
 * loop at the next cut inside Jest's large heap). A younger piece is not cut: a consumer joining
 * shares it (its profile starts at most this long early), one leaving leaves it to the others,
 * a take rolls it into the next window. Nothing is lost or counted twice.
 */
const MIN_PIECE_SAMPLE_PERIODS = 3;

export class SharedEngine {
  private readonly time: TimeProfiler;
  private readonly minPieceMs: number;
  /** performance.now() of the engine start or last cut */
  private pieceStartedAt = 0;
  /** the process's heap sampler, the workers' with it */
  readonly heap: SharedHeap;
  private readonly shares = new Set<TimeShare>();
  private readonly threads?: ThreadSource;

  constructor(options: SharedEngineOptions) {
    this.threads = options.threads;
    this.time = new TimeProfiler({
      sampleRate: options.sampleRate,
      cpu: options.collectCpuTime,
      wall: true,
      windowMs: options.windowMs,
      labeler: options.labeler,
      frameColumns: options.frameColumns,
    });
    this.heap = new SharedHeap(options.heapSamplingInterval, options.frameColumns ?? false, options.threads);
    this.minPieceMs = (MIN_PIECE_SAMPLE_PERIODS * 1000) / options.sampleRate;
  }

  /** consumers of the time engine right now */
  get timeConsumers(): number {
    return this.shares.size;
  }

  /** V8 sampler restarts so far (see TimeProfiler.collect) */
  get samplerRestarts(): number {
    return this.time.samplerRestarts;
  }

  /**
   * Join the time engine. The first consumer starts it (throws when it cannot start, and then
   * nothing changed); a later one cuts the running window first, so the samples before its
   * arrival go to those already in and its own start now.
   */
  joinTime(): TimeShare {
    if (this.shares.size === 0) {
      this.time.start();
      this.pieceStartedAt = performance.now();
    } else this.cut();
    const share = new TimeShare();
    this.shares.add(share);
    share.threads = this.threads?.join();
    return share;
  }

  /**
   * The share's samples up to now (throws if a cut lost some of them); sampling goes on. The
   * worker threads are asked for theirs at the same moment: threadPieces() gives them.
   */
  takeTime(share: TimeShare): Profile[] {
    if (this.shares.has(share)) {
      if (this.threads && share.threads) share.threadsAsked = this.threads.take(share.threads);
      this.cut();
    }
    return drain(share);
  }

  /** The share's samples up to now, and it leaves; the last one out stops the engine (the workers' too). */
  leaveTime(share: TimeShare): Profile[] {
    if (this.threads && share.threads) {
      share.threadsAsked = this.threads.leave(share.threads);
      share.threads = undefined;
    }
    if (!this.shares.has(share)) return drain(share);
    if (this.shares.size > 1) {
      this.cut();
      this.shares.delete(share);
      return drain(share);
    }
    this.shares.delete(share);
    try {
      const last = this.time.stopRaw();
      if (last !== undefined) share.pieces.push(last);
    } catch (error) {
      share.failure ??= { error };
    }
    return drain(share);
  }

  /** The worker threads' pieces asked for at the share's last take or leave (a bounded wait; never rejects). */
  async threadPieces(share: TimeShare): Promise<Profile[]> {
    const asked = share.threadsAsked;
    share.threadsAsked = undefined;
    return asked === undefined ? [] : asked;
  }

  /** One profile of a window's pieces, main thread's and workers', or undefined when there are none. */
  mergeWindow(main: readonly Profile[], workers: readonly Profile[]): Profile | undefined {
    return mergeThreadPieces(main, workers, this.threads?.mainThreadLabel());
  }

  /** The CPU and/or wall views of (merged) engine profiles. */
  views(profile: Profile, kinds: { cpu: boolean; wall: boolean }): WindowProfile[] {
    return this.time.views(profile, kinds);
  }

  /** The samples since the previous cut go to every consumer in now; sampling goes on. */
  private cut(): void {
    const now = performance.now();
    if (now - this.pieceStartedAt < this.minPieceMs) return;
    this.pieceStartedAt = now;
    const restartsBefore = this.time.samplerRestarts;
    let piece: Profile;
    try {
      piece = this.time.collectRaw();
    } catch (error) {
      for (const share of this.shares) share.failure ??= { error };
      return;
    }
    const restarted = this.time.samplerRestarts !== restartsBefore;
    for (const share of this.shares) {
      share.pieces.push(piece);
      if (restarted) share.samplerRestarted = true;
    }
  }
}

function drain(share: TimeShare): Profile[] {
  const pieces = share.pieces.splice(0);
  share.since = performance.now();
  const failure = share.failure;
  if (failure !== undefined) {
    share.failure = undefined;
    throw failure.error;
  }
  return pieces;
}
