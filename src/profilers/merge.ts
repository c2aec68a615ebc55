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

/**
 * One profile holding every sample of `profiles`. They must share their sample types (checked:
 * throws otherwise). timeNanos is the earliest, durationNanos the sum. One profile comes back as is.
 */
export function mergeProfiles(profiles: readonly Profile[]): Profile {
  if (profiles.length === 0) throw new Error('mergeProfiles: no profile to merge');
  if (profiles.length === 1) return profiles[0];
  const strings = new StringTable();
  const typesOf = (p: Profile): string[] => p.sampleType.map((t) => `${p.stringTable.strings[Number(t.type)]}/${p.stringTable.strings[Number(t.unit)]}`);
  const expected = typesOf(profiles[0]).join(',');
  for (const p of profiles) {
    if (typesOf(p).join(',') !== expected) throw new Error(`mergeProfiles: sample types differ (${expected} vs ${typesOf(p).join(',')})`);
  }

  const functionIds = new Map<string, number>();
  const functions: PprofFunction[] = [];
  const locationIds = new Map<string, number>();
  const locations: Location[] = [];
  const mappingIds = new Map<string, number>();
  const mappings: Mapping[] = [];
  const samples: Sample[] = [];
  let durationNanos = 0;
  let timeNanos = Number.POSITIVE_INFINITY;

  for (const p of profiles) {
    const s = (index: number | bigint): string => p.stringTable.strings[Number(index)] ?? '';
    const ref = (index: number | bigint): number => strings.dedup(s(index));
    durationNanos += Number(p.durationNanos);
    if (Number(p.timeNanos) > 0) timeNanos = Math.min(timeNanos, Number(p.timeNanos));

    const mappingMap = new Map<number, number>();
    for (const m of p.mapping) {
      const key = [m.memoryStart, m.memoryLimit, m.fileOffset, s(m.filename), s(m.buildId)].join('\u0000');
      let id = mappingIds.get(key);
      if (id === undefined) {
        id = mappings.length + 1;
        mappingIds.set(key, id);
        mappings.push(new Mapping({ ...m, id, filename: ref(m.filename), buildId: ref(m.buildId) }));
      }
      mappingMap.set(Number(m.id), id);
    }

    const functionMap = new Map<number, number>();
    for (const f of p.function) {
      const key = [s(f.name), s(f.systemName), s(f.filename), Number(f.startLine)].join('\u0000');
      let id = functionIds.get(key);
      if (id === undefined) {
        id = functions.length + 1;
        functionIds.set(key, id);
        functions.push(new PprofFunction({ id, name: ref(f.name), systemName: ref(f.systemName), filename: ref(f.filename), startLine: f.startLine }));
      }
      functionMap.set(Number(f.id), id);
    }

    const locationMap = new Map<number, number>();
    for (const l of p.location) {
      const mappingId = mappingMap.get(Number(l.mappingId)) ?? 0;
      const lines = l.line.map((line) => new Line({ functionId: functionMap.get(Number(line.functionId)) ?? 0, line: line.line, column: line.column }));
      const key = [mappingId, Number(l.address), l.isFolded ? 1 : 0, ...lines.map((x) => `${x.functionId}:${x.line}:${x.column}`)].join('\u0000');
      let id = locationIds.get(key);
      if (id === undefined) {
        id = locations.length + 1;
        locationIds.set(key, id);
        locations.push(new Location({ id, mappingId, address: l.address, line: lines, isFolded: l.isFolded }));
      }
      locationMap.set(Number(l.id), id);
    }

    for (const sample of p.sample) {
      samples.push(
        new Sample({
          locationId: sample.locationId.map((id) => locationMap.get(Number(id)) ?? 0),
          value: sample.value.map(Number),
          label: sample.label.map(
            (label) =>
              new Label({
                key: ref(label.key),
                str: Number(label.str) === 0 ? 0 : ref(label.str),
                num: label.num,
                numUnit: Number(label.numUnit) === 0 ? 0 : ref(label.numUnit),
              }),
          ),
        }),
      );
    }
  }

  const first = profiles[0];
  const valueType = (t: ValueType | undefined): ValueType | undefined =>
    t && new ValueType({ type: strings.dedup(first.stringTable.strings[Number(t.type)] ?? ''), unit: strings.dedup(first.stringTable.strings[Number(t.unit)] ?? '') });
  return new Profile({
    sampleType: first.sampleType.map((t) => valueType(t)!),
    sample: samples,
    mapping: mappings,
    location: locations,
    function: functions,
    stringTable: strings,
    timeNanos: Number.isFinite(timeNanos) ? timeNanos : 0,
    durationNanos,
    periodType: valueType(first.periodType),
    period: first.period,
  });
}
