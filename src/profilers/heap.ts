/**
 * The V8 sampling heap profiler (@datadog/pprof `heap`): in-use space and objects at the end
 * of each window. Heap samples carry no request context, so heap profiles have no labels.
 */
import { heap } from '@datadog/pprof';
import { FRAME_COLUMNS_ENGINE_OPTIONS } from './frames';
import type { WindowProfile } from './time';
import { capSamples, hasSamples, mergeIdenticalSamples } from './transform';
import { MAX_SAMPLES_PER_PROFILE } from '../pyroscope-rules';

/** Frames kept per allocation stack; deeper stacks are cut at the root side by V8. */
const STACK_DEPTH = 64;

export class HeapProfiler {
  private started = false;

  constructor(
    private readonly samplingIntervalBytes: number,
    /** keep each frame's column for source maps (FrameRewriter) */
    private readonly frameColumns = false,
  ) {}

  get running(): boolean {
    return this.started;
  }

  start(): void {
    heap.start(this.samplingIntervalBytes, STACK_DEPTH);
    this.started = true;
  }

  /** What is live now (heap profiles are snapshots, not deltas). */
  collect(): WindowProfile[] {
    const snapshot = this.snapshot();
    if (snapshot === undefined || !hasSamples(snapshot.profile)) return [];
    return [snapshot];
  }

  /** What is live now, also when nothing is (a pull capture answers an empty profile then). */
  snapshot(): WindowProfile | undefined {
    if (!this.started) return undefined;
    const { sourceMapper, columnNumbers } = FRAME_COLUMNS_ENGINE_OPTIONS;
    const profile = this.frameColumns ? heap.profile(undefined, sourceMapper, undefined, columnNumbers) : heap.profile();
    mergeIdenticalSamples(profile);
    const foldedSamples = capSamples(profile, MAX_SAMPLES_PER_PROFILE);
    return { kind: 'heap', profile, foldedSamples };
  }

  /** Stops the sampler without a snapshot (the sampler that ran between sessions, at close). */
  release(): void {
    if (!this.started) return;
    this.started = false;
    heap.stop();
  }

  /** The last snapshot, then the sampler is stopped. */
  stop(): WindowProfile[] {
    if (!this.started) return [];
    try {
      return this.collect();
    } finally {
      // stopped even when the snapshot failed: a sampler nobody owns would refuse the next start
      heap.stop();
      this.started = false;
    }
  }
}
