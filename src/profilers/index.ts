/**
 * One profiling session's samplers: the time profiler (CPU and/or wall) and the heap sampler,
 * started and stopped together; each window is captured synchronously (a few ms), then
 * encoded and gzipped off the hot moment (pprof-format yields between sections, gzip runs on
 * libuv's thread pool).
 */
import { encode } from '@datadog/pprof';
import type { EncodedProfile } from '../types';
import { FrameRewriter } from './frames';
import { HeapProfiler } from './heap';
import { TimeProfiler, type SampleLabeler, type TimeKinds, type WindowProfile } from './time';

export { FrameRewriter, HeapProfiler, TimeProfiler, type SampleLabeler, type TimeKinds, type WindowProfile };

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
  /**
   * Keep the heap sampler running from open() (ready) to close(), not only in sessions: a heap
   * profile shows what was sampled while the sampler ran, so a session started by heap growth
   * would otherwise miss everything allocated before it.
   */
  heapBetweenSessions?: boolean;
  /** source maps and clean file names, applied to every profile before encoding */
  frames?: FrameRewriter;
}

/** The real thing, over @datadog/pprof. */
export class EngineProfiler implements SessionProfiler {
  private readonly time: TimeProfiler;
  private readonly heap: HeapProfiler;
  /** the running session started the time profiler (heap-only sessions leave the engine alone) */
  private sessionTime = false;
  /** the running session collects heap profiles */
  private sessionHeap = false;
  /** the heap sampler was started by open() and runs until close() */
  private heapOpen = false;

  constructor(private readonly options: EngineProfilerOptions) {
    const { cpu, wall } = options.profileTypes;
    const frameColumns = options.frames?.wantsColumns ?? false;
    this.time = new TimeProfiler({ sampleRate: options.sampleRate, cpu, wall, windowMs: options.windowMs, labeler: options.labeler, frameColumns });
    this.heap = new HeapProfiler(options.heapSamplingInterval, frameColumns);
  }

  open(): void {
    if (!this.options.heapBetweenSessions || this.heap.running) return;
    this.heap.start();
    this.heapOpen = true;
  }

  close(): void {
    this.heapOpen = false;
    this.heap.release();
  }

  start(extras: SessionExtras = {}): void {
    const types = this.options.profileTypes;
    const kinds = { cpu: types.cpu, wall: types.wall || extras.wall === true };
    const heap = types.heap || extras.heap === true;
    const time = kinds.cpu || kinds.wall;
    if (time) this.time.start(kinds);
    try {
      if (heap && !this.heap.running) this.heap.start();
    } catch (error) {
      if (time) this.time.stop();
      throw error;
    }
    this.sessionTime = time;
    this.sessionHeap = heap;
  }

  /**
   * The time profile is taken first, at the window boundary; the event loop gets a turn before
   * the heap snapshot and again before encoding, so requests run between the three blocks
   * instead of waiting for their sum (the longest flush block is then `time.stop` alone).
   */
  async collect(window: Window): Promise<CollectedWindow> {
    const restartsBefore = this.time.samplerRestarts;
    const timeProfiles = this.sessionTime && this.time.running ? this.time.collect() : [];
    const samplerRestarted = this.time.samplerRestarts > restartsBefore;
    await yieldToEventLoop();
    const heapProfiles = this.sessionHeap ? this.heap.collect() : [];
    await yieldToEventLoop();
    const encoded = await encodeWindow([...timeProfiles, ...heapProfiles], window, this.options.frames);
    return samplerRestarted ? { ...encoded, samplerRestarted } : encoded;
  }

  stop(window: Window): Promise<CollectedWindow> {
    const { sessionTime, sessionHeap } = this;
    this.sessionTime = this.sessionHeap = false;
    let timeProfiles: WindowProfile[];
    try {
      timeProfiles = sessionTime ? this.time.stop() : [];
    } catch (error) {
      if (!this.heapOpen) this.heap.release(); // both samplers stop even when one throws
      throw error;
    }
    // the sampler open() started keeps running after the session: only its snapshot is taken
    const heapProfiles = !sessionHeap ? [] : this.heapOpen ? this.heap.collect() : this.heap.stop();
    return encodeWindow([...timeProfiles, ...heapProfiles], window, this.options.frames);
  }
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

async function encodeWindow(captured: WindowProfile[], window: Window, frames: FrameRewriter | undefined): Promise<CollectedWindow> {
  const profiles: EncodedProfile[] = [];
  let foldedSamples = 0;
  for (const { kind, profile, foldedSamples: folded } of captured) {
    // Pyroscope files a profile at time_nanos (and refuses it outside now-1h..now+10m)
    profile.timeNanos = window.startMs * 1_000_000;
    profile.durationNanos = Math.max(0, window.endMs - window.startMs) * 1_000_000;
    await frames?.rewrite(profile);
    const body = await encode(profile);
    profiles.push({ kind, body, startMs: window.startMs, endMs: window.endMs, sampleCount: profile.sample.length });
    foldedSamples += folded;
  }
  return { profiles, foldedSamples };
}
