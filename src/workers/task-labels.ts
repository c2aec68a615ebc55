/**
 * Labels inside a participating worker thread: the engine's labeler (the same propagation as the
 * main thread's, src/labels/propagation.ts: CPED where AsyncContextFrame is on, async hooks
 * otherwise, detected in this thread) and the label sets of tasks, rebuilt from the plain object
 * the main thread's `app.profiler.taskLabels()` produced.
 *
 * Every sample of the worker gets `thread=<worker name>`, tasks' samples their route labels too.
 * The cardinality cap applies per window as on the main thread (maxLabelValues).
 */
import type { Labels } from '../types';
import { LabelCardinalityCap } from '../labels/cardinality';
import { EMPTY_LABELS, labelValueOf, THREAD_LABEL } from '../labels/label-set';
import { asyncContextFrameActive, createPropagator, labelsOfContext, type LabelMode, type LabelPropagator } from '../labels/propagation';
import type { SampleLabeler } from '../profilers';
import { labelNameProblem } from '../pyroscope-rules';

/** What `app.profiler.taskLabels()` returns and `withTaskLabels` takes: label names to values. */
export type TaskLabels = Readonly<Record<string, string>>;

/**
 * Distinct task label sets kept for reuse (keyed by their entries). Tasks of one route send equal
 * objects, and a kept set lets CPED mode keep its engine holder; beyond the bound a set is built
 * per task (correct, only slower), so memory stays bounded whatever the routes.
 */
const MAX_KEPT_SETS = 1024;

type GenerateLabelsArgs = { node: unknown; context?: { context?: object } };

export class WorkerLabels implements SampleLabeler {
  readonly mode: LabelMode;
  private propagator: LabelPropagator | undefined;
  private active = false;
  private readonly cap: LabelCardinalityCap;
  private readonly threadOnly: Labels;
  /** capped context labels -> the same plus `thread` */
  private readonly threaded = new WeakMap<Labels, Labels>();
  private readonly kept = new Map<string, Labels>();
  /** task label entries refused (bad name, bad value, over maxLabelsPerSample), since the last take */
  private dropped = 0;

  constructor(
    private readonly threadName: string,
    private readonly limits: { maxLabelValues: number; maxLabelsPerSample: number },
  ) {
    this.mode = asyncContextFrameActive() ? 'cped' : 'async-hooks';
    this.cap = new LabelCardinalityCap(limits.maxLabelValues);
    this.threadOnly = Object.freeze({ [THREAD_LABEL]: threadName });
  }

  timeProfilerOptions(): { withContexts: true; useCPED: boolean } {
    return { withContexts: true, useCPED: this.mode === 'cped' };
  }

  activate(): void {
    if (this.active) return;
    this.propagator ??= createPropagator(this.mode);
    this.propagator.enable();
    this.cap.resetWindow();
    this.active = true;
  }

  deactivate(): void {
    if (!this.active) return;
    this.active = false;
    this.propagator?.disable();
  }

  readonly generateLabels = (args: GenerateLabelsArgs): Record<string, string> => {
    const capped = this.cap.apply(labelsOfContext(args.context?.context));
    if (capped === EMPTY_LABELS) return this.threadOnly as Record<string, string>;
    let out = this.threaded.get(capped);
    if (out === undefined) {
      out = Object.freeze({ ...capped, [THREAD_LABEL]: this.threadName });
      this.threaded.set(capped, out);
    }
    return out as Record<string, string>;
  };

  /** Runs `fn` under the task's labels while the engine samples; just runs it otherwise. */
  run<T>(value: unknown, fn: () => T): T {
    const propagator = this.propagator;
    if (!this.active || propagator === undefined || value === undefined || value === null) return fn();
    const set = this.labelSetOf(value);
    if (set === undefined) return fn();
    return propagator.run(set.labels, fn, set.kept);
  }

  /** Refused entries since the previous call. */
  takeDropped(): number {
    const dropped = this.dropped;
    this.dropped = 0;
    return dropped;
  }

  private labelSetOf(value: unknown): { labels: Labels; kept: boolean } | undefined {
    if (typeof value !== 'object' || Array.isArray(value)) {
      this.dropped++;
      return undefined;
    }
    const entries = Object.entries(value as Record<string, unknown>);
    const key = JSON.stringify(entries);
    const known = this.kept.get(key);
    if (known !== undefined) return { labels: known, kept: true };
    const labels = this.build(entries);
    if (this.kept.size >= MAX_KEPT_SETS) return { labels, kept: false };
    this.kept.set(key, labels);
    return { labels, kept: true };
  }

  /** Names are checked as Pyroscope wants them (route/method allowed: they come from the main thread); `thread` is ours. */
  private build(entries: Array<[string, unknown]>): Labels {
    const out: Record<string, string> = {};
    let count = 0;
    // the main thread's maxLabelsPerSample already leaves room for `thread`
    const room = this.limits.maxLabelsPerSample;
    for (const [name, raw] of entries) {
      const value = labelValueOf(raw);
      if (name === THREAD_LABEL || labelNameProblem(name) !== undefined || value === undefined || count >= room) {
        this.dropped++;
        continue;
      }
      out[name] = value;
      count++;
    }
    return Object.freeze(out);
  }
}
