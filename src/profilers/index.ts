/**
 * One profiling session's samplers: the time profiler (CPU and/or wall) and the heap sampler,
 * started and stopped together; each window is captured synchronously (a few ms), then
 * encoded and gzipped off the hot moment (pprof-format yields between sections, gzip runs on
 * libuv's thread pool).
 */
import { encode } from '@datadog/pprof';
import type { EncodedProfile } from '../types';
import type { Profile } from 'pprof-format';
import { HeapProfiler } from './heap';
import { mergeProfiles } from './merge';
import { SharedEngine, TimeShare } from './shared-engine';
import { TimeProfiler, type SampleLabeler, type WindowProfile } from './time';
import { hasSamples } from './transform';

export { HeapProfiler, SharedEngine, TimeProfiler, TimeShare, mergeProfiles, type SampleLabeler, type WindowProfile };
export type { SharedEngineOptions } from './shared-engine';

/** What the controller drives; a fake in tests. */
export interface SessionProfiler {
  /** Starts sampling; throws when the engine cannot start (nothing is left running then). */
  start(): void;
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
}

/**
 * The push session's consumer of the shared engine (shared-engine.ts): it joins at start, takes
 * its window's samples at each collect (merging the pieces a pull capture may have cut into it)
 * and leaves at stop.
 */
export class EngineProfiler implements SessionProfiler {
  private readonly engine: SharedEngine;
  private readonly kinds: { cpu: boolean; wall: boolean; heap: boolean };
  private share?: TimeShare;
  private holdsHeap = false;

  constructor(options: EngineProfilerOptions) {
    this.kinds = options.profileTypes;
    this.engine =
      options.engine ??
      new SharedEngine({
        sampleRate: options.sampleRate,
        heapSamplingInterval: options.heapSamplingInterval,
        collectCpuTime: options.profileTypes.cpu,
        windowMs: options.windowMs,
        labeler: options.labeler,
      });
  }

  start(): void {
    if (this.share !== undefined || this.holdsHeap) throw new Error('the session profiler is already started');
    const { cpu, wall, heap } = this.kinds;
    if (cpu || wall) this.share = this.engine.joinTime();
    try {
      if (heap) {
        this.engine.acquireHeap();
        this.holdsHeap = true;
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
  }

  /**
   * The time profile is taken first, at the window boundary; the event loop gets a turn before
   * the heap snapshot and again before encoding, so requests run between the three blocks
   * instead of waiting for their sum (the longest flush block is then `time.stop` alone).
   */
  async collect(window: Window): Promise<CollectedWindow> {
    const share = this.share;
    const pieces = share ? this.engine.takeTime(share) : [];
    const samplerRestarted = share?.samplerRestarted === true;
    if (share) share.samplerRestarted = false;
    const timeProfiles = this.timeViews(pieces);
    await yieldToEventLoop();
    const heapProfiles = this.heapSnapshot();
    await yieldToEventLoop();
    const encoded = await encodeWindow([...timeProfiles, ...heapProfiles], window);
    return samplerRestarted ? { ...encoded, samplerRestarted } : encoded;
  }

  stop(window: Window): Promise<CollectedWindow> {
    let pieces: Profile[];
    try {
      pieces = this.leaveTime();
    } catch (error) {
      this.releaseHeap(); // both samplers stop even when one throws
      throw error;
    }
    let heapProfiles: WindowProfile[];
    try {
      heapProfiles = this.heapSnapshot();
    } finally {
      this.releaseHeap();
    }
    return encodeWindow([...this.timeViews(pieces), ...heapProfiles], window);
  }

  private leaveTime(): Profile[] {
    const share = this.share;
    this.share = undefined;
    return share ? this.engine.leaveTime(share) : [];
  }

  private releaseHeap(): void {
    if (!this.holdsHeap) return;
    this.holdsHeap = false;
    this.engine.releaseHeap();
  }

  private heapSnapshot(): WindowProfile[] {
    if (!this.holdsHeap) return [];
    const snapshot = this.engine.heapSnapshot();
    return snapshot && hasSamples(snapshot.profile) ? [snapshot] : [];
  }

  private timeViews(pieces: Profile[]): WindowProfile[] {
    if (pieces.length === 0) return [];
    return this.engine.views(mergeProfiles(pieces), this.kinds);
  }
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

async function encodeWindow(captured: WindowProfile[], window: Window): Promise<CollectedWindow> {
  const profiles: EncodedProfile[] = [];
  let foldedSamples = 0;
  for (const { kind, profile, foldedSamples: folded } of captured) {
    // Pyroscope files a profile at time_nanos (and refuses it outside now-1h..now+10m)
    profile.timeNanos = window.startMs * 1_000_000;
    profile.durationNanos = Math.max(0, window.endMs - window.startMs) * 1_000_000;
    const body = await encode(profile);
    profiles.push({ kind, body, startMs: window.startMs, endMs: window.endMs, sampleCount: profile.sample.length });
    foldedSamples += folded;
  }
  return { profiles, foldedSamples };
}
