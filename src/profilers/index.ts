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
import { TimeProfiler, type SampleLabeler, type WindowProfile } from './time';

export { FrameRewriter, HeapProfiler, TimeProfiler, type SampleLabeler, type WindowProfile };

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
  /** source maps and clean file names, applied to every profile before encoding */
  frames?: FrameRewriter;
}

/** The real thing, over @datadog/pprof. */
export class EngineProfiler implements SessionProfiler {
  private readonly time?: TimeProfiler;
  private readonly heap?: HeapProfiler;
  private readonly frames?: FrameRewriter;

  constructor(options: EngineProfilerOptions) {
    const { cpu, wall, heap } = options.profileTypes;
    const frameColumns = options.frames?.wantsColumns ?? false;
    if (cpu || wall) {
      this.time = new TimeProfiler({ sampleRate: options.sampleRate, cpu, wall, windowMs: options.windowMs, labeler: options.labeler, frameColumns });
    }
    if (heap) this.heap = new HeapProfiler(options.heapSamplingInterval, frameColumns);
    this.frames = options.frames;
  }

  start(): void {
    this.time?.start();
    try {
      this.heap?.start();
    } catch (error) {
      this.time?.stop();
      throw error;
    }
  }

  /**
   * The time profile is taken first, at the window boundary; the event loop gets a turn before
   * the heap snapshot and again before encoding, so requests run between the three blocks
   * instead of waiting for their sum (the longest flush block is then `time.stop` alone).
   */
  async collect(window: Window): Promise<CollectedWindow> {
    const restartsBefore = this.time?.samplerRestarts ?? 0;
    const timeProfiles = this.time?.running ? this.time.collect() : [];
    const samplerRestarted = (this.time?.samplerRestarts ?? 0) > restartsBefore;
    await yieldToEventLoop();
    const heapProfiles = this.heap?.collect() ?? [];
    await yieldToEventLoop();
    const encoded = await encodeWindow([...timeProfiles, ...heapProfiles], window, this.frames);
    return samplerRestarted ? { ...encoded, samplerRestarted } : encoded;
  }

  stop(window: Window): Promise<CollectedWindow> {
    let timeProfiles: WindowProfile[];
    try {
      timeProfiles = this.time?.stop() ?? [];
    } catch (error) {
      this.heap?.stop(); // both samplers stop even when one throws
      throw error;
    }
    return encodeWindow([...timeProfiles, ...(this.heap?.stop() ?? [])], window, this.frames);
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
