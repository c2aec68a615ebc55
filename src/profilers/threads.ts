/**
 * Worker threads as one more source of time samples and heap snapshots (src/workers/ implements
 * it; this module only says what the shared engine needs from it) and the merge of a window's
 * pieces (or snapshots) of every thread into one profile.
 */
import { Label, type Profile } from 'pprof-format';
import { MAX_SAMPLES_PER_PROFILE } from '../pyroscope-rules';
import { mergeProfiles } from './merge';
import type { WindowProfile } from './time';
import { capSamples, sampleTypeIndex } from './transform';

/** One consumer's part of the workers' samples (opaque to the engine). */
export type ThreadShare = object;

/** What the shared engine asks of the worker threads; never throws nor rejects. */
export interface ThreadSource {
  /** A consumer joins (the first starts the workers' engines). */
  join(): ThreadShare;
  /** The share's pieces up to now, after a bounded wait for the workers. */
  take(share: ThreadShare): Promise<Profile[]>;
  /** As take, and the share leaves (the last one out stops the workers' engines). */
  leave(share: ThreadShare): Promise<Profile[]>;
  /** The label of the main thread's samples (`thread=main`); undefined while no worker took part. */
  mainThreadLabel(): { name: string; value: string } | undefined;
  /** The workers' heap samplers. */
  readonly heap: ThreadHeaps;
}

/** What the shared heap sampler (shared-heap.ts) asks of the worker threads; never throws nor rejects. */
export interface ThreadHeaps {
  /** The main thread's heap sampler started: the workers' start too. */
  start(): void;
  /** The main thread's heap sampler stopped: the workers' stop too. */
  stop(): void;
  /** Every worker's latest heap snapshot, after a bounded wait (`keepAlive`: the process is held up for it). */
  snapshots(keepAlive: boolean): Promise<Profile[]>;
}

/** @datadog/pprof's pseudo-frame for CPU used by threads other than the main thread's JavaScript. */
export const NON_JS_THREADS_FUNCTION = 'Non JS threads activity';

/**
 * One profile of a window: the main thread's pieces (labelled `thread=<mainThread>` when given)
 * and the workers' pieces (labelled `thread=<name>` by their own engines), or undefined when
 * there is none. The main engine counts all other threads' CPU, workers included, in its
 * "Non JS threads activity" sample; the CPU the workers' own samples show is taken off it, so
 * no CPU is counted twice.
 */
export function mergeThreadPieces(main: readonly Profile[], workers: readonly Profile[], mainThread: { name: string; value: string } | undefined): Profile | undefined {
  const all = [...main, ...workers];
  if (all.length === 0) return undefined;
  const merged = mergeProfiles(all);
  if (mainThread !== undefined) labelUnlabelledThreads(merged, mainThread.name, mainThread.value);
  if (workers.length > 0) deductCpu(merged, workers.reduce((sum, p) => sum + cpuOf(p), 0));
  return merged;
}

/**
 * One heap profile of what is live in every thread: the main thread's snapshot (labelled
 * `thread=<mainThread>` when given) and the workers' (labelled by the workers), capped as one
 * profile. The main snapshot alone comes back as it is when no worker sent one.
 */
export function mergeHeapSnapshots(main: WindowProfile, workers: readonly Profile[], mainThread: { name: string; value: string } | undefined): WindowProfile {
  if (mainThread !== undefined) labelUnlabelledThreads(main.profile, mainThread.name, mainThread.value);
  if (workers.length === 0) return main;
  const profile = mergeProfiles([main.profile, ...workers]);
  return { kind: 'heap', profile, foldedSamples: main.foldedSamples + capSamples(profile, MAX_SAMPLES_PER_PROFILE) };
}

/** Samples without a thread label get `key=value` (idempotent: a piece shared by two consumers may come twice). */
export function labelUnlabelledThreads(profile: Profile, key: string, value: string): void {
  const keyId = profile.stringTable.dedup(key);
  const valueId = profile.stringTable.dedup(value);
  for (const sample of profile.sample) {
    if (sample.label.some((l) => Number(l.key) === keyId)) continue;
    sample.label = [...sample.label, new Label({ key: keyId, str: valueId })];
  }
}

function cpuOf(profile: Profile): number {
  const index = sampleTypeIndex(profile, 'cpu');
  if (index < 0) return 0;
  return profile.sample.reduce((sum, s) => sum + Number(s.value[index]), 0);
}

/** Takes `cpu` nanoseconds off the "Non JS threads activity" samples (never below zero). */
function deductCpu(profile: Profile, cpu: number): void {
  const index = sampleTypeIndex(profile, 'cpu');
  if (index < 0 || cpu <= 0) return;
  const strings = profile.stringTable.strings;
  const functionIds = new Set(profile.function.filter((f) => strings[Number(f.name)] === NON_JS_THREADS_FUNCTION).map((f) => Number(f.id)));
  if (functionIds.size === 0) return;
  const locationIds = new Set(profile.location.filter((l) => l.line.some((line) => functionIds.has(Number(line.functionId)))).map((l) => Number(l.id)));
  let left = cpu;
  for (const sample of profile.sample) {
    if (left <= 0) return;
    if (sample.locationId.length !== 1 || !locationIds.has(Number(sample.locationId[0]))) continue;
    const value = Number(sample.value[index]);
    const taken = Math.min(value, left);
    sample.value[index] = value - taken;
    left -= taken;
  }
}
