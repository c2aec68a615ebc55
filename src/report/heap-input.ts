/**
 * Heap profiles in the report's input: which decoded profile is a heap snapshot, which snapshot
 * the heap report shows (the latest: in-use memory is a state, summing snapshots would count the
 * same live bytes once per window), which two `--growth` compares (the earliest and the latest),
 * and the time of each snapshot.
 */
import type { Profile } from 'pprof-format';
import { HEAP_SAMPLE_TYPES, isHeapSampleType, ReportBuilder, SAMPLE_TYPE_PREFERENCE, functionKey, sampleTypeNames, type BuildOptions, type HeapDetails, type ReportData } from './aggregate';

/** The sample types the report reads from time profiles (cpu, wall, samples). */
const TIME_SAMPLE_TYPES = SAMPLE_TYPE_PREFERENCE.filter((t) => !isHeapSampleType(t));

/** A profile with in-use space and no time sample type (ours, Pyroscope's Node SDK, Go's heap). */
export function isHeapProfile(profile: Profile): boolean {
  const types = sampleTypeNames(profile);
  return types.includes('inuse_space') && !types.some((t) => TIME_SAMPLE_TYPES.includes(t));
}

/**
 * When the snapshot was taken, unix ms: pprof time_nanos; when a tool leaves it out (0), the
 * time in the exporter's file name; else undefined (then the input order decides, and no rate).
 */
export function snapshotTimeMs(profile: Profile, nameTimeMs: number | undefined): number | undefined {
  const ns = Number(profile.timeNanos);
  if (ns > 0) return ns / 1e6;
  return nameTimeMs;
}

export interface HeapSnapshot {
  profile: Profile;
  source: string;
  appName: string | undefined;
  timeMs: number | undefined;
  /** position in the input (files sorted by name within a directory) */
  order: number;
}

/** Orders snapshots by time; a snapshot without one keeps its place in the input. */
export function compareSnapshots(a: HeapSnapshot, b: HeapSnapshot): number {
  if (a.timeMs !== undefined && b.timeMs !== undefined && a.timeMs !== b.timeMs) return a.timeMs - b.timeMs;
  return a.order - b.order;
}

/** Keeps the earliest and the latest heap snapshot offered, so memory holds two profiles at most. */
export class HeapSnapshots {
  earliest: HeapSnapshot | undefined;
  latest: HeapSnapshot | undefined;
  count = 0;
  readonly sources: string[] = [];

  offer(snapshot: HeapSnapshot): void {
    this.count += 1;
    this.sources.push(snapshot.source);
    if (!this.earliest || compareSnapshots(snapshot, this.earliest) < 0) this.earliest = snapshot;
    if (!this.latest || compareSnapshots(snapshot, this.latest) >= 0) this.latest = snapshot;
  }
}

/** The report of one heap snapshot: in-use space by function, with the objects beside it. */
export function buildHeapReport(snapshot: HeapSnapshot, earlierSnapshots: number, options: BuildOptions): ReportData {
  const builder = new ReportBuilder(process.cwd());
  builder.add(snapshot.profile, snapshot.source, snapshot.appName);
  const space = builder.build({ ...options, routeFilter: undefined, sampleType: 'inuse_space' });
  const objects = builder.build({ top: Number.MAX_SAFE_INTEGER, sortBy: 'total', sampleType: 'inuse_objects' });
  const objectsByFunction: HeapDetails['objectsByFunction'] = {};
  for (const route of objects.routes) {
    for (const f of route.functions) objectsByFunction[functionKey(f)] = { self: f.self, total: f.total };
  }
  const hasObjects = sampleTypeNames(snapshot.profile).includes(HEAP_SAMPLE_TYPES[1]!);
  return {
    ...space,
    heap: {
      source: snapshot.source,
      timeMs: snapshot.timeMs,
      earlierSnapshots,
      objectsTotal: hasObjects ? objects.total : 0,
      objectsByFunction,
    },
  };
}
