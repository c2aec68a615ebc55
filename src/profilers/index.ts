/**
 * One profiling session's samplers: the time profiler (CPU and/or wall) and the heap sampler,
 * started and stopped together; each window is captured synchronously (a few ms), then
 * encoded and gzipped off the hot moment (pprof-format yields between sections, gzip runs on
 * libuv's thread pool); an unchanged heap snapshot reuses the previous encoding (snapshot-encoder.ts).
 */
import type { EncodedProfile } from '../types';
import type { Profile } from 'pprof-format';
import { encodeProfile } from './encode';
import { FrameRewriter } from './frames';
import { HeapProfiler } from './heap';
import { mergeProfiles } from './merge';
import { SharedEngine, TimeShare } from './shared-engine';
import { SnapshotEncoder } from './snapshot-encoder';
import { TimeProfiler, type SampleLabeler, type TimeKinds, type WindowProfile } from './time';
import { hasSamples } from './transform';

export { encodeProfile, FrameRewriter, HeapProfiler, SharedEngine, TimeProfiler, TimeShare, mergeProfiles, type SampleLabeler, type TimeKinds, type WindowProfile };
export type { SharedEngineOptions } from './shared-engine';
export type { ThreadHeaps, ThreadShare, ThreadSource } from './threads';

/** Profiles one session collects on top of `profileTypes` (set by what started it). */
export interface SessionExtras {
  wall?: boolean;
  heap?: boolean;
}

/** What the controller drives; a fake in tests. */
export interface SessionProfiler {
  /** Starts sampling; throws when the engine cannot start (nothing is left running then). */
  start(extras?: SessionExtras): void;
  /** At ready: starts what samples between sessions (may throw; sessions still work then). */
  open?(): void;
  /** At close, after the last session's stop: releases what open() started. */
  close?(): void;
  /** Profiles of the window since the previous call (or start); sampling goes on. */
  collect(window: Window): Promise<CollectedWindow>;
  /** Profiles of the last window; sampling stops. Safe to call when not started. */
  stop(window: Window): Promise<CollectedWindow>;
}

export interface Window {
  startMs: number;
  endMs: number;
}

export interface CollectedWindow {
  profiles: EncodedProfile[];
  /** samples folded into "(other stacks)" to stay under Pyroscope's per-profile limit */
  foldedSamples: number;
  /** V8's sampler was found stuck in this window and the engine restarted (see TimeProfiler.collect) */
  samplerRestarted?: boolean;
}

export interface EngineProfilerOptions {
  sampleRate: number;
  heapSamplingInterval: number;
  profileTypes: { cpu: boolean; wall: boolean; heap: boolean };
  windowMs: number;
  labeler?: SampleLabeler;
  /** the process's engine, shared with pull captures; default: one of its own */
  engine?: SharedEngine;
  /**
   * Keep the heap sampler running from open() (ready) to close(), not only in sessions: a heap
   * profile shows what was sampled while the sampler ran, so a session started by heap growth
   * would otherwise miss everything allocated before it.
   */
  heapBetweenSessions?: boolean;
  /** source maps and clean file names, applied to every profile before encoding */
  frames?: FrameRewriter;
}

/**
 * The push session's consumer of the shared engine (shared-engine.ts): it joins at start, takes
 * its window's samples at each collect (merging the pieces a pull capture may have cut into it)
 * and leaves at stop.
 */
export class EngineProfiler implements SessionProfiler {
  private readonly engine: SharedEngine;
  /** the running session's time views (undefined: it does not sample time) */
  private share?: TimeShare;
  private sessionKinds: TimeKinds = { cpu: false, wall: false };
  /** the running session holds the heap sampler */
  private sessionHeap = false;
  /** open() holds the heap sampler until close() */
  private heapOpen = false;
  /** heap windows: an unchanged snapshot is not rewritten and encoded again (snapshot-encoder.ts) */
  private readonly heapEncoder: SnapshotEncoder;

  constructor(private readonly options: EngineProfilerOptions) {
    this.engine = options.engine ?? ownEngine(options);
    this.heapEncoder = new SnapshotEncoder(options.frames);
  }

  /** heap windows that sent the previous window's encoding again (the heap had not changed) */
  get heapWindowsReused(): number {
    return this.heapEncoder.reused;
  }

  open(): void {
    if (!this.options.heapBetweenSessions || this.heapOpen) return;
    this.engine.heap.acquire();
    this.heapOpen = true;
  }

  close(): void {
    if (!this.heapOpen) return;
    this.heapOpen = false;
    this.engine.heap.release();
  }

  start(extras: SessionExtras = {}): void {
    if (this.share !== undefined || this.sessionHeap) throw new Error('the session profiler is already started');
    const types = this.options.profileTypes;
    const kinds = { cpu: types.cpu, wall: types.wall || extras.wall === true };
    const heap = types.heap || extras.heap === true;
    if (kinds.cpu || kinds.wall) this.share = this.engine.joinTime();
    try {
      if (heap) {
        this.engine.heap.acquire();
        this.sessionHeap = true;
      }
    } catch (error) {
      // both samplers or none; the heap's error is the one the caller must see
      try {
        this.leaveTime();
      } catch {
        // a labelling failure on the way out: the engine is released all the same
      }
      throw error;
    }
    this.sessionKinds = kinds;
  }

  /**
   * The time profile is taken first, at the window boundary; the event loop gets a turn before
   * its pieces are merged and split into views, before the heap snapshot and again before
   * encoding, so requests run between the blocks instead of waiting for their sum (the longest
   * flush block is then `time.stop` alone: 5-10 ms on Node 24 in bench/block-causes.js, merge and
   * views 0-4 ms more when they ran in the same block). The workers' heap snapshots are asked
   * for at the boundary too, so that wait overlaps theirs of the time pieces.
   */
  async collect(window: Window): Promise<CollectedWindow> {
    const share = this.share;
    const workerHeaps = this.sessionHeap ? this.engine.heap.askThreads() : undefined;
    const pieces = share ? this.engine.takeTime(share) : [];
    const samplerRestarted = share?.samplerRestarted === true;
    if (share) share.samplerRestarted = false;
    const kinds = this.sessionKinds; // as they were when the pieces were taken
    if (pieces.length > 0) await yieldToEventLoop();
    const workerPieces = share ? await this.engine.threadPieces(share) : [];
    const timeProfiles = this.timeViews(pieces, workerPieces, kinds);
    await yieldToEventLoop();
    const heapProfiles = this.heapProfiles(this.sessionHeap ? this.engine.heap.snapshot() : undefined, await workerHeaps);
    await yieldToEventLoop();
    const encoded = await this.encodeWindow([...timeProfiles, ...heapProfiles], window);
    return samplerRestarted ? { ...encoded, samplerRestarted } : encoded;
  }

  /** Async, yet the engines stop before the first await (synchronously, as the controller needs); then the workers' last pieces are awaited. */
  async stop(window: Window): Promise<CollectedWindow> {
    const share = this.share;
    const workerHeaps = this.sessionHeap ? this.engine.heap.askThreads(true) : undefined;
    let pieces: Profile[];
    try {
      pieces = this.leaveTime();
    } catch (error) {
      this.releaseSessionHeap(); // both samplers stop even when one throws
      throw error;
    }
    let mainHeap: WindowProfile | undefined;
    try {
      mainHeap = this.sessionHeap ? this.engine.heap.snapshot() : undefined;
    } finally {
      // the sampler open() holds keeps running after the session (the engine counts holders)
      this.releaseSessionHeap();
    }
    const workerPieces = share ? await this.engine.threadPieces(share) : [];
    const heapProfiles = this.heapProfiles(mainHeap, await workerHeaps);
    return this.encodeWindow([...this.timeViews(pieces, workerPieces), ...heapProfiles], window);
  }

  private async encodeWindow(captured: WindowProfile[], window: Window): Promise<CollectedWindow> {
    const profiles: EncodedProfile[] = [];
    let foldedSamples = 0;
    const durationMs = window.endMs - window.startMs;
    for (const { kind, profile, foldedSamples: folded } of captured) {
      const body =
        kind === 'heap'
          ? await this.heapEncoder.encode(profile, window.startMs, durationMs)
          : await encodeProfile(profile, window.startMs, durationMs, this.options.frames);
      profiles.push({ kind, body, startMs: window.startMs, endMs: window.endMs, sampleCount: profile.sample.length });
      foldedSamples += folded;
    }
    return { profiles, foldedSamples };
  }

  private leaveTime(): Profile[] {
    const share = this.share;
    this.share = undefined;
    return share ? this.engine.leaveTime(share) : [];
  }

  private releaseSessionHeap(): void {
    if (!this.sessionHeap) return;
    this.sessionHeap = false;
    this.engine.heap.release();
  }

  /** The window's heap profile: the main thread's snapshot with the workers' merged in. */
  private heapProfiles(main: WindowProfile | undefined, workers: Profile[] = []): WindowProfile[] {
    const snapshot = this.engine.heap.merge(main, workers);
    return snapshot && hasSamples(snapshot.profile) ? [snapshot] : [];
  }

  private timeViews(pieces: Profile[], workerPieces: Profile[], kinds: TimeKinds = this.sessionKinds): WindowProfile[] {
    const merged = this.engine.mergeWindow(pieces, workerPieces);
    return merged === undefined ? [] : this.engine.views(merged, kinds);
  }
}

/** An engine of the session's own, when the process's is not given (tests, the bench's engine floor). */
function ownEngine(options: EngineProfilerOptions): SharedEngine {
  return new SharedEngine({
    sampleRate: options.sampleRate,
    heapSamplingInterval: options.heapSamplingInterval,
    collectCpuTime: options.profileTypes.cpu,
    windowMs: options.windowMs,
    labeler: options.labeler,
    frameColumns: options.frames?.wantsColumns ?? false,
  });
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
