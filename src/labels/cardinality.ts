/**
 * The cardinality cap, applied when a window's samples are turned into pprof labels.
 *
 * Every distinct label value becomes a Pyroscope series, so per window each label name may take
 * at most `maxValues` distinct values; later newcomers are collapsed into one `(overflow)` value
 * and counted. Values already seen keep flowing, so the routes that were busy first stay exact.
 *
 * `span_id` is exempt: Pyroscope keeps it on the sample, not in the series (ingest splits the
 * profile "without" it), so its many values cost no series; capping it would break every
 * trace-to-profile link after the first maxValues requests of a window. `span_name` is capped.
 */
import type { Labels } from '../types';
import { EMPTY_LABELS } from './label-set';
import { SPAN_ID_LABEL } from './spans';

export const OVERFLOW_VALUE = '(overflow)';

export interface CardinalityStats {
  /** distinct label values collapsed into `(overflow)`, summed over windows */
  overflowedValues: number;
  /** samples that carried at least one collapsed value, summed over windows */
  overflowedSamples: number;
}

interface CappedEntry {
  labels: Labels;
  overflowed: boolean;
}

export class LabelCardinalityCap {
  /** distinct values kept this window, per label name */
  private kept = new Map<string, Set<string>>();
  /** distinct values collapsed this window, per label name (to count each value once) */
  private collapsed = new Map<string, Set<string>>();
  /**
   * The capped form of each context object seen this window. Label sets are shared frozen
   * objects, so a window has few of them and most samples are a cache hit.
   */
  private capped = new Map<object, CappedEntry>();
  private overflowedValues = 0;
  private overflowedSamples = 0;
  /** True while one time.stop() is turning samples into labels (see apply). */
  private inWindow = false;
  private readonly closeWindow = (): void => {
    this.inWindow = false;
  };

  constructor(private readonly maxValues: number) {}

  /**
   * The labels to give a sample whose context is `context` (any object; strings kept only).
   *
   * A window is one time.stop() call: the engine calls generateLabels for all of that window's
   * samples synchronously, so the first call after a microtask boundary opens a new window.
   * This keeps the per-window count right without the caller having to call resetWindow().
   */
  apply(context: unknown): Labels {
    if (!this.inWindow) {
      this.resetWindow();
      this.inWindow = true;
      queueMicrotask(this.closeWindow);
    }
    if (context === null || typeof context !== 'object') return EMPTY_LABELS;
    let entry = this.capped.get(context);
    if (entry === undefined) {
      entry = this.cap(context as Record<string, unknown>);
      this.capped.set(context, entry);
    }
    if (entry.overflowed) this.overflowedSamples++;
    return entry.labels;
  }

  /** Starts counting distinct values afresh (call once per profile window). */
  resetWindow(): void {
    this.kept = new Map();
    this.collapsed = new Map();
    this.capped = new Map();
  }

  stats(): CardinalityStats {
    return { overflowedValues: this.overflowedValues, overflowedSamples: this.overflowedSamples };
  }

  private cap(context: Record<string, unknown>): CappedEntry {
    const out: Record<string, string> = {};
    let overflowed = false;
    for (const name of Object.keys(context)) {
      const value = context[name];
      if (typeof value !== 'string') continue;
      if (name === SPAN_ID_LABEL || this.admit(name, value)) {
        out[name] = value;
      } else {
        out[name] = OVERFLOW_VALUE;
        overflowed = true;
      }
    }
    return { labels: Object.freeze(out), overflowed };
  }

  private admit(name: string, value: string): boolean {
    let kept = this.kept.get(name);
    if (kept === undefined) {
      kept = new Set();
      this.kept.set(name, kept);
    }
    if (kept.has(value)) return true;
    if (kept.size < this.maxValues) {
      kept.add(value);
      return true;
    }
    this.countCollapsed(name, value);
    return false;
  }

  private countCollapsed(name: string, value: string): void {
    let collapsed = this.collapsed.get(name);
    if (collapsed === undefined) {
      collapsed = new Set();
      this.collapsed.set(name, collapsed);
    }
    if (!collapsed.has(value)) {
      collapsed.add(value);
      this.overflowedValues++;
    }
  }
}
