/**
 * Rewrites the engine's time profile into what Pyroscope stores best, before encoding:
 *
 * - the CPU profile keeps `samples/count` (the engine's `sample/count`, renamed as Go, Java and
 *   Python name it) + `cpu/nanoseconds` only, so Pyroscope files it as
 *   `process_cpu` next to Go, Java and Python services; samples that used no CPU go;
 * - the wall profile keeps `samples/count` + `wall/nanoseconds` (stored as `wall`);
 * - identical stack + label samples are merged (the engine emits one sample per labelled hit);
 * - a profile never exceeds Pyroscope's 16,000 samples: the smallest samples beyond the limit
 *   are folded into one "(other stacks)" sample, so totals stay right and the fold is counted.
 */
import { Function as PprofFunction, Label, Line, Location, Profile, Sample, ValueType } from 'pprof-format';
import { MAX_SAMPLES_PER_PROFILE } from '../pyroscope-rules';

export type TimeProjection = 'cpu' | 'wall';

export interface Projected {
  profile: Profile;
  /** samples folded into "(other stacks)" to stay under the sample limit */
  foldedSamples: number;
}

export const FOLDED_FUNCTION_NAME = '(other stacks)';

/** Index of the sample type named `type` (e.g. 'cpu', 'wall', 'samples'), or -1. */
export function sampleTypeIndex(profile: Profile, type: string): number {
  const strings = profile.stringTable.strings;
  return profile.sampleType.findIndex((t) => strings[Number(t.type)] === type);
}

/**
 * The CPU or wall view of a time profile, or undefined when the engine did not record that
 * sample type (cpu needs `collectCpuTime`) or nothing was spent at all.
 */
export function projectTimeProfile(source: Profile, view: TimeProjection, maxSamples = MAX_SAMPLES_PER_PROFILE): Projected | undefined {
  // the engine names its count type "sample"; Go, Java and Python send "samples"
  const countIdx = Math.max(sampleTypeIndex(source, 'sample'), sampleTypeIndex(source, 'samples'));
  const valueIdx = sampleTypeIndex(source, view);
  if (countIdx < 0 || valueIdx < 0) return undefined;

  const merged = new Map<string, Sample>();
  for (const sample of source.sample) {
    const value = Number(sample.value[valueIdx]);
    if (value === 0) continue; // idle, or a hit without CPU time: nothing to show in this view
    const count = Number(sample.value[countIdx]);
    const key = sampleKey(sample);
    const existing = merged.get(key);
    if (existing) {
      existing.value[0] = Number(existing.value[0]) + count;
      existing.value[1] = Number(existing.value[1]) + value;
    } else {
      merged.set(key, new Sample({ locationId: sample.locationId, label: sample.label, value: [count, value] }));
    }
  }
  if (merged.size === 0) return undefined;

  const profile = new Profile({
    sampleType: [
      new ValueType({ type: source.stringTable.dedup('samples'), unit: source.stringTable.dedup('count') }),
      source.sampleType[valueIdx],
    ],
    sample: [...merged.values()],
    mapping: source.mapping,
    location: source.location,
    function: source.function,
    stringTable: source.stringTable,
    timeNanos: source.timeNanos,
    durationNanos: source.durationNanos,
    periodType: source.sampleType[valueIdx],
    period: source.period,
  });
  const foldedSamples = capSamples(profile, maxSamples);
  return { profile, foldedSamples };
}

/** Sum the values of samples with the same stack and labels (heap profiles list one per allocation size). */
export function mergeIdenticalSamples(profile: Profile): void {
  const merged = new Map<string, Sample>();
  for (const sample of profile.sample) {
    const key = sampleKey(sample);
    const existing = merged.get(key);
    if (!existing) {
      merged.set(key, new Sample({ locationId: sample.locationId, label: sample.label, value: sample.value.map(Number) }));
      continue;
    }
    for (let i = 0; i < existing.value.length; i++) existing.value[i] = Number(existing.value[i]) + Number(sample.value[i]);
  }
  profile.sample = [...merged.values()];
}

/** Same stack and same labels: the same sample. Labels are compared as sorted key/value ids. */
function sampleKey(sample: Sample): string {
  let key = sample.locationId.join(',');
  if (sample.label.length > 0) {
    const labels = sample.label.map((l) => `${l.key}=${l.str}:${l.num}`);
    labels.sort();
    key += `|${labels.join(',')}`;
  }
  return key;
}

/**
 * Keep the `maxSamples - 1` largest samples (by the last value type) and fold the others into
 * one sample whose stack is a single "(other stacks)" frame. Returns how many were folded.
 */
export function capSamples(profile: Profile, maxSamples: number): number {
  if (profile.sample.length <= maxSamples) return 0;
  const valueIdx = profile.sampleType.length - 1;
  const sorted = [...profile.sample].sort((a, b) => Number(b.value[valueIdx]) - Number(a.value[valueIdx]));
  const kept = sorted.slice(0, maxSamples - 1);
  const folded = sorted.slice(maxSamples - 1);
  const totals = profile.sampleType.map((_, i) => folded.reduce((sum, s) => sum + Number(s.value[i]), 0));
  kept.push(new Sample({ locationId: [addSyntheticLocation(profile, FOLDED_FUNCTION_NAME)], value: totals, label: [] as Label[] }));
  profile.sample = kept;
  return folded.length;
}

function addSyntheticLocation(profile: Profile, name: string): number {
  const nameId = profile.stringTable.dedup(name);
  const functionId = profile.function.reduce((max, f) => Math.max(max, Number(f.id)), 0) + 1;
  const locationId = profile.location.reduce((max, l) => Math.max(max, Number(l.id)), 0) + 1;
  profile.function = [...profile.function, new PprofFunction({ id: functionId, name: nameId, systemName: nameId })];
  profile.location = [...profile.location, new Location({ id: locationId, line: [new Line({ functionId, line: 0 })] })];
  return locationId;
}

/** False when every value of every sample is zero (Pyroscope answers 200 and stores nothing). */
export function hasSamples(profile: Profile): boolean {
  return profile.sample.some((s) => s.value.some((v) => Number(v) !== 0));
}
