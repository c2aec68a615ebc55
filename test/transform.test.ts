import { Function as PprofFunction, Label, Line, Location, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import { FOLDED_FUNCTION_NAME, capSamples, mergeIdenticalSamples, projectTimeProfile } from '../src/profilers/transform';

/** A time profile shaped like the engine's: sample/count, wall/nanoseconds, cpu/nanoseconds. */
function engineProfile(samples: Array<{ stack: number[]; values: [number, number, number]; route?: string }>): Profile {
  const strings = new StringTable();
  const type = (t: string, u: string) => new ValueType({ type: strings.dedup(t), unit: strings.dedup(u) });
  const fns = [1, 2, 3].map((id) => new PprofFunction({ id, name: strings.dedup(`fn${id}`) }));
  const locations = [1, 2, 3].map((id) => new Location({ id, line: [new Line({ functionId: id })] }));
  const routeKey = strings.dedup('route');
  return new Profile({
    sampleType: [type('sample', 'count'), type('wall', 'nanoseconds'), type('cpu', 'nanoseconds')],
    sample: samples.map(
      (s) =>
        new Sample({
          locationId: s.stack,
          value: s.values,
          label: s.route ? [new Label({ key: routeKey, str: strings.dedup(s.route) })] : [],
        }),
    ),
    function: fns,
    location: locations,
    stringTable: strings,
    period: 10_000_000,
  });
}

const names = (p: Profile) => p.sampleType.map((t) => `${p.stringTable.strings[Number(t.type)]}/${p.stringTable.strings[Number(t.unit)]}`);
const labelOf = (p: Profile, s: Sample) => (s.label[0] ? p.stringTable.strings[Number(s.label[0].str)] : undefined);

describe('projectTimeProfile', () => {
  const source = engineProfile([
    { stack: [1, 2], values: [1, 10, 7], route: '/ping' },
    { stack: [1, 2], values: [1, 10, 5], route: '/ping' },
    { stack: [1, 2], values: [1, 10, 4], route: '/other' },
    { stack: [3], values: [1, 10, 0] }, // waiting: wall time, no CPU
    { stack: [2], values: [1, 0, 0] }, // idle
  ]);

  it('keeps samples/count + cpu/nanoseconds, merges identical stack+labels, drops CPU-less samples', () => {
    const { profile, foldedSamples } = projectTimeProfile(source, 'cpu')!;
    expect(names(profile)).toEqual(['samples/count', 'cpu/nanoseconds']);
    expect(foldedSamples).toBe(0);
    expect(profile.sample.map((s) => [s.locationId.map(Number), labelOf(profile, s), s.value.map(Number)])).toEqual([
      [[1, 2], '/ping', [2, 12]],
      [[1, 2], '/other', [1, 4]],
    ]);
  });

  it('keeps samples/count + wall/nanoseconds for the wall view', () => {
    const { profile } = projectTimeProfile(source, 'wall')!;
    expect(names(profile)).toEqual(['samples/count', 'wall/nanoseconds']);
    expect(profile.sample.map((s) => s.value.map(Number))).toEqual([
      [2, 20],
      [1, 10],
      [1, 10],
    ]);
  });

  it('returns undefined when the view was not recorded or nothing was spent', () => {
    const noCpu = engineProfile([{ stack: [1], values: [1, 10, 0] }]);
    noCpu.sampleType = noCpu.sampleType.slice(0, 2);
    expect(projectTimeProfile(noCpu, 'cpu')).toBeUndefined();
    expect(projectTimeProfile(engineProfile([{ stack: [1], values: [1, 0, 0] }]), 'cpu')).toBeUndefined();
  });
});

describe('capSamples', () => {
  it('folds the smallest samples into "(other stacks)" and keeps the totals', () => {
    const profile = engineProfile(Array.from({ length: 10 }, (_, i) => ({ stack: [1], values: [1, 10, i + 1] as [number, number, number], route: `/r${i}` })));
    const before = profile.sample.reduce((sum, s) => sum + Number(s.value[2]), 0);
    expect(capSamples(profile, 4)).toBe(7);
    expect(profile.sample).toHaveLength(4);
    expect(profile.sample.slice(0, 3).map((s) => Number(s.value[2]))).toEqual([10, 9, 8]);
    const folded = profile.sample[3];
    expect(folded.value.map(Number)).toEqual([7, 70, 28]);
    expect(profile.sample.reduce((sum, s) => sum + Number(s.value[2]), 0)).toBe(before);
    const location = profile.location.find((l) => Number(l.id) === Number(folded.locationId[0]))!;
    const fn = profile.function.find((f) => Number(f.id) === Number(location.line[0].functionId))!;
    expect(profile.stringTable.strings[Number(fn.name)]).toBe(FOLDED_FUNCTION_NAME);
    // the result still encodes and decodes
    expect(Profile.decode(profile.encode()).sample).toHaveLength(4);
  });

  it('leaves a profile under the limit alone', () => {
    const profile = engineProfile([{ stack: [1], values: [1, 1, 1] }]);
    expect(capSamples(profile, 16_000)).toBe(0);
    expect(profile.sample).toHaveLength(1);
  });
});

describe('mergeIdenticalSamples', () => {
  it('sums every value of samples with the same stack and labels', () => {
    const profile = engineProfile([
      { stack: [1, 2], values: [1, 2, 3] },
      { stack: [1, 2], values: [4, 5, 6] },
      { stack: [2, 1], values: [1, 1, 1] },
    ]);
    mergeIdenticalSamples(profile);
    expect(profile.sample.map((s) => s.value.map(Number))).toEqual([
      [5, 7, 9],
      [1, 1, 1],
    ]);
  });
});
