/**
 * The V8 time profiler (@datadog/pprof `time`), one per process: CPU time per sample when the
 * `cpu` profile is on, wall samples always. Each window yields the CPU and/or wall views.
 */
import { time } from '@datadog/pprof';
import type { Profile } from 'pprof-format';
import type { ProfileKind } from '../types';
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
}

export interface WindowProfile {
  kind: ProfileKind;
  profile: Profile;
  foldedSamples: number;
}

export class TimeProfiler {
  constructor(private readonly options: TimeProfilerOptions) {}

  get running(): boolean {
    return time.isStarted();
  }

  /** Starts sampling. Throws if the engine cannot start (e.g. another time profiler runs). */
  start(): void {
    const { sampleRate, cpu, windowMs, labeler } = this.options;
    time.start({
      intervalMicros: Math.round(1_000_000 / sampleRate),
      durationMillis: windowMs,
      collectCpuTime: cpu,
      withContexts: labeler !== undefined,
      useCPED: labeler?.timeProfilerOptions().useCPED ?? false,
      // line numbers cannot be combined with contexts (engine notes)
      lineNumbers: false,
    });
    labeler?.activate();
  }

  /** The window since the last call, and sampling goes on. */
  collect(): WindowProfile[] {
    const profile = time.stop(true, this.options.labeler?.generateLabels);
    return this.views(profile);
  }

  /** The last window, and the profiler is released. Labels stop first: setContext throws once stopped. */
  stop(): WindowProfile[] {
    if (!time.isStarted()) return [];
    this.options.labeler?.deactivate();
    const profile = time.stop(false, this.options.labeler?.generateLabels);
    return this.views(profile);
  }

  private views(profile: Profile): WindowProfile[] {
    const out: WindowProfile[] = [];
    const add = (kind: 'cpu' | 'wall', projected: Projected | undefined): void => {
      if (projected) out.push({ kind, profile: projected.profile, foldedSamples: projected.foldedSamples });
    };
    if (this.options.cpu) add('cpu', projectTimeProfile(profile, 'cpu'));
    if (this.options.wall) add('wall', projectTimeProfile(profile, 'wall'));
    return out;
  }
}
