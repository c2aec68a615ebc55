/**
 * The V8 time profiler (@datadog/pprof `time`), one per process: CPU time per sample when the
 * `cpu` profile is on, wall samples always. Each window yields the CPU and/or wall views.
 */
import { time } from '@datadog/pprof';
import type { Profile } from 'pprof-format';
import type { ProfileKind } from '../types';
import { FRAME_COLUMNS_ENGINE_OPTIONS } from './frames';
import { projectTimeProfile, type Projected } from './transform';

/** What the time profiler needs from the label propagation (src/labels.ts). */
export interface SampleLabeler {
  timeProfilerOptions(): { withContexts: true; useCPED: boolean };
  activate(): void;
  deactivate(): void;
  generateLabels: (args: { node: unknown; context?: { context?: object } }) => Record<string, string>;
}

export interface TimeProfilerOptions {
  sampleRate: number;
  cpu: boolean;
  wall: boolean;
  windowMs: number;
  labeler?: SampleLabeler;
  /** keep each frame's column for source maps (FrameRewriter) */
  frameColumns?: boolean;
}

/** The views one session produces (a session may add wall to what the options say). */
export interface TimeKinds {
  cpu: boolean;
  wall: boolean;
}

export interface WindowProfile {
  kind: ProfileKind;
  profile: Profile;
  foldedSamples: number;
}

/** time.v8ProfilerStuckEventLoopDetected(): 0 fine, 1 maybe stuck (false positives), 2 stuck for certain */
const STUCK_FOR_CERTAIN = 2;
const MIN_SAMPLE_PERIODS_FOR_STUCK = 20;
const STUCK_WINDOWS_BEFORE_RESTART = 2;

export class TimeProfiler {
  /** windows after which V8's sampler was found stuck and the engine was started afresh */
  samplerRestarts = 0;
  private windowStartedAt = 0;
  /** consecutive long windows the engine reported stuck for certain */
  private stuckWindows = 0;
  private kinds: TimeKinds;

  constructor(private readonly options: TimeProfilerOptions) {
    this.kinds = { cpu: options.cpu, wall: options.wall };
  }

  get running(): boolean {
    return time.isStarted();
  }

  /**
   * Starts sampling, with the views of this session (default: the options'). Throws if the engine
   * cannot start (e.g. another time profiler runs).
   */
  start(kinds: TimeKinds = { cpu: this.options.cpu, wall: this.options.wall }): void {
    const { sampleRate, windowMs, labeler } = this.options;
    const cpu = kinds.cpu;
    this.kinds = { ...kinds };
    time.start({
      intervalMicros: Math.round(1_000_000 / sampleRate),
      durationMillis: windowMs,
      collectCpuTime: cpu,
      withContexts: labeler !== undefined,
      useCPED: labeler?.timeProfilerOptions().useCPED ?? false,
      // line numbers cannot be combined with contexts (engine notes)
      lineNumbers: false,
      // The engine's default workaround for a V8 race (the sampler's event loop getting stuck
      // on restart) sleeps the main thread for up to two sample periods, twice, at every window:
      // 12-20 ms of blocked event loop per flush measured at 100 Hz, against 1-2 ms without it.
      // The engine still detects a stuck sampler without the workaround; collect() recovers.
      workaroundV8Bug: false,
      ...(this.options.frameColumns === true ? FRAME_COLUMNS_ENGINE_OPTIONS : {}),
    });
    this.windowStartedAt = performance.now();
    this.stuckWindows = 0;
    try {
      labeler?.activate();
    } catch (error) {
      // the caller sees a failed start: it must not leave an engine running that nobody stops
      time.stop(false);
      throw error;
    }
  }

  /**
   * The window since the last call, and sampling goes on. When the engine reports that V8's
   * sampler was certainly stuck (no sample at all) in two long windows in a row, it is stopped
   * and started afresh, which is what clears the condition; the (empty) window is still returned.
   */
  collect(): WindowProfile[] {
    return this.views(this.collectRaw());
  }

  /** As collect(), the engine's profile as is (all its sample types), for the shared engine. */
  collectRaw(): Profile {
    const profile = this.stopEngine(true);
    const now = performance.now();
    const windowMs = now - this.windowStartedAt;
    this.windowStartedAt = now;
    // A window of a few sample periods can hold no tick by chance, and a machine that stalls the
    // whole process (sampling thread included) can empty one window; a stuck sampler stays
    // stuck, so only two long empty windows in a row restart the engine.
    const longEnough = windowMs * this.options.sampleRate >= MIN_SAMPLE_PERIODS_FOR_STUCK * 1000;
    const stuck = longEnough && time.v8ProfilerStuckEventLoopDetected() === STUCK_FOR_CERTAIN;
    this.stuckWindows = stuck ? this.stuckWindows + 1 : 0;
    if (this.stuckWindows >= STUCK_WINDOWS_BEFORE_RESTART) {
      this.stopRaw(); // the restart's own (empty) profile: nothing to project
      this.start(this.kinds);
      this.samplerRestarts++;
    }
    return profile;
  }

  /** The last window, and the profiler is released. Labels stop first: setContext throws once stopped. */
  stop(): WindowProfile[] {
    const profile = this.stopRaw();
    return profile === undefined ? [] : this.views(profile);
  }

  /** As stop(), the engine's profile as is; undefined when it was not running. */
  stopRaw(): Profile | undefined {
    if (!time.isStarted()) return undefined;
    let profile: Profile;
    try {
      this.options.labeler?.deactivate();
    } finally {
      // released even when deactivate threw (its error then goes on up)
      profile = this.stopEngine(false);
    }
    return profile;
  }

  /**
   * `time.stop` with a generateLabels that cannot throw. A throw inside the engine's stop(false)
   * comes after V8 stopped but before @datadog/pprof forgets it: the engine then says "already
   * started" to every start and "not started" to every stop, for the life of the process.
   * A labelling failure is thrown here instead, once the engine is in a sane state.
   */
  private stopEngine(restart: boolean): Profile {
    const generateLabels = this.options.labeler?.generateLabels;
    let failure: { error: unknown } | undefined;
    const safeLabels: SampleLabeler['generateLabels'] | undefined =
      generateLabels &&
      ((args) => {
        if (failure !== undefined) return {};
        try {
          return generateLabels(args);
        } catch (error) {
          failure = { error };
          return {};
        }
      });
    const profile = time.stop(restart, safeLabels);
    if (failure !== undefined) {
      const reason = failure.error instanceof Error ? failure.error.message : String(failure.error);
      throw new Error(`sample labels could not be generated: ${reason}`);
    }
    return profile;
  }

  /** The CPU and/or wall views of an engine profile (by default those of the options). */
  views(profile: Profile, kinds: TimeKinds = this.kinds): WindowProfile[] {
    const out: WindowProfile[] = [];
    const add = (kind: 'cpu' | 'wall', projected: Projected | undefined): void => {
      if (projected) out.push({ kind, profile: projected.profile, foldedSamples: projected.foldedSamples });
    };
    if (kinds.cpu) add('cpu', projectTimeProfile(profile, 'cpu'));
    if (kinds.wall) add('wall', projectTimeProfile(profile, 'wall'));
    return out;
  }
}
