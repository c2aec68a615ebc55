/**
 * Merging pprof profiles of the same kind (same sample types) into one: what a consumer of the
 * shared time engine does when its window was cut into pieces by another consumer (a pull
 * capture starting or ending in the middle of a push window, see shared-engine.ts).
 *
 * Every piece comes from its own `time.stop()` and so has its own string table and its own
 * function/location ids; the merged profile gets one string table, functions and locations are
 * identified by what they say (name, file, line), and samples are concatenated with their ids
 * remapped. Identical stacks are summed later by the projection (transform.ts), so this stays a
 * plain remap.
 */
import { Function as PprofFunction, Label, Line, Location, Mapping, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import { Interned } from './interned';

/**
 * One profile holding every sample of `profiles`. They must share their sample types (checked:
 * throws otherwise). timeNanos is the earliest, durationNanos the sum. One profile comes back as is.
 */
export function mergeProfiles(profiles: readonly Profile[]): Profile {
  if (profiles.length === 0) throw new Error('mergeProfiles: no profile to merge');
  if (profiles.length === 1) return profiles[0];
  const typesOf = (p: Profile): string[] => p.sampleType.map((t) => `${p.stringTable.strings[Number(t.type)]}/${p.stringTable.strings[Number(t.unit)]}`);
  const expected = typesOf(profiles[0]).join(',');
  for (const p of profiles) {
    if (typesOf(p).join(',') !== expected) throw new Error(`mergeProfiles: sample types differ (${expected} vs ${typesOf(p).join(',')})`);
  }
  const merged = new MergedProfile();
  for (const p of profiles) merged.add(p);
  return merged.build(profiles[0]);
}

/** The tables of the merged profile; each piece added has its ids remapped into them. */
class MergedProfile {
  private readonly strings = new StringTable();
  private readonly mappings = new Interned<Mapping>();
  private readonly functions = new Interned<PprofFunction>();
  private readonly locations = new Interned<Location>();
  private readonly samples: Sample[] = [];
  private durationNanos = 0;
  private timeNanos = Number.POSITIVE_INFINITY;

  add(p: Profile): void {
    const s = (index: number | bigint): string => p.stringTable.strings[Number(index)] ?? '';
    const ref = (index: number | bigint): number => this.strings.dedup(s(index));
    this.durationNanos += Number(p.durationNanos);
    if (Number(p.timeNanos) > 0) this.timeNanos = Math.min(this.timeNanos, Number(p.timeNanos));

    const mappingIds = new Map<number, number>();
    for (const m of p.mapping) {
      const key = [m.memoryStart, m.memoryLimit, m.fileOffset, s(m.filename), s(m.buildId)].join('\u0000');
      mappingIds.set(Number(m.id), this.mappings.idOf(key, (id) => new Mapping({ ...m, id, filename: ref(m.filename), buildId: ref(m.buildId) })));
    }
    const functionIds = new Map<number, number>();
    for (const f of p.function) {
      const key = [s(f.name), s(f.systemName), s(f.filename), Number(f.startLine)].join('\u0000');
      const make = (id: number): PprofFunction => new PprofFunction({ id, name: ref(f.name), systemName: ref(f.systemName), filename: ref(f.filename), startLine: f.startLine });
      functionIds.set(Number(f.id), this.functions.idOf(key, make));
    }
    const locationIds = new Map<number, number>();
    for (const l of p.location) {
      const mappingId = mappingIds.get(Number(l.mappingId)) ?? 0;
      const lines = l.line.map((line) => new Line({ functionId: functionIds.get(Number(line.functionId)) ?? 0, line: line.line, column: line.column }));
      const key = [mappingId, Number(l.address), l.isFolded ? 1 : 0, ...lines.map((x) => `${x.functionId}:${x.line}:${x.column}`)].join('\u0000');
      locationIds.set(Number(l.id), this.locations.idOf(key, (id) => new Location({ id, mappingId, address: l.address, line: lines, isFolded: l.isFolded })));
    }
    for (const sample of p.sample) {
      const label = sample.label.map(
        (l) => new Label({ key: ref(l.key), str: Number(l.str) === 0 ? 0 : ref(l.str), num: l.num, numUnit: Number(l.numUnit) === 0 ? 0 : ref(l.numUnit) }),
      );
      this.samples.push(new Sample({ locationId: sample.locationId.map((id) => locationIds.get(Number(id)) ?? 0), value: sample.value.map(Number), label }));
    }
  }

  /** The merged profile, with the sample and period types of `first`. */
  build(first: Profile): Profile {
    const name = (index: number | bigint): number => this.strings.dedup(first.stringTable.strings[Number(index)] ?? '');
    const valueType = (t: ValueType | undefined): ValueType | undefined => t && new ValueType({ type: name(t.type), unit: name(t.unit) });
    return new Profile({
      sampleType: first.sampleType.map((t) => valueType(t)!),
      sample: this.samples,
      mapping: this.mappings.items,
      location: this.locations.items,
      function: this.functions.items,
      stringTable: this.strings,
      timeNanos: Number.isFinite(this.timeNanos) ? this.timeNanos : 0,
      durationNanos: this.durationNanos,
      periodType: valueType(first.periodType),
      period: first.period,
    });
  }
}
