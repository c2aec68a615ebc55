/**
 * Issue 18: one profile per window from the pieces of every thread (src/profilers/threads.ts).
 * Engine-shaped profiles (sample/count, wall, cpu), merged, then read back by name and label.
 */
import { Function as PprofFunction, Label, Line, Location, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import { mergeThreadPieces, NON_JS_THREADS_FUNCTION } from '../src/profilers/threads';

interface Spec {
  fn: string;
  cpu: number;
  thread?: string;
  route?: string;
}

/** One profile, each sample a one-frame stack of function `fn`, with count 1 and wall = cpu. */
function piece(samples: Spec[]): Profile {
  const strings = new StringTable();
  const type = (t: string, u: string) => new ValueType({ type: strings.dedup(t), unit: strings.dedup(u) });
  const names = [...new Set(samples.map((s) => s.fn))];
  const label = (key: string, value: string | undefined) => (value === undefined ? [] : [new Label({ key: strings.dedup(key), str: strings.dedup(value) })]);
  return new Profile({
    sampleType: [type('sample', 'count'), type('wall', 'nanoseconds'), type('cpu', 'nanoseconds')],
    function: names.map((name, i) => new PprofFunction({ id: i + 1, name: strings.dedup(name) })),
    location: names.map((_, i) => new Location({ id: i + 1, line: [new Line({ functionId: i + 1 })] })),
    sample: samples.map((s) => new Sample({ locationId: [names.indexOf(s.fn) + 1], value: [1, s.cpu, s.cpu], label: [...label('thread', s.thread), ...label('route', s.route)] })),
    stringTable: strings,
    period: 10_000_000,
  });
}

/** Per sample: function, cpu, and its labels as `k=v` sorted. */
function read(profile: Profile): Array<{ fn: string; cpu: number; labels: string }> {
  const s = profile.stringTable.strings;
  const fnOf = new Map(profile.location.map((l) => [Number(l.id), s[Number(profile.function.find((f) => Number(f.id) === Number(l.line[0]!.functionId))!.name)]]));
  return profile.sample.map((sample) => ({
    fn: fnOf.get(Number(sample.locationId[0]))!,
    cpu: Number(sample.value[2]),
    labels: sample.label.map((l) => `${s[Number(l.key)]}=${s[Number(l.str)]}`).sort().join(','),
  }));
}

const MAIN = { name: 'thread', value: 'main' };

describe('mergeThreadPieces', () => {
  it('labels the main thread\'s samples thread=main, keeps the workers\' own thread labels', () => {
    const main = piece([{ fn: 'handler', cpu: 10, route: '/a' }]);
    const worker = piece([{ fn: 'resize', cpu: 30, thread: 'pool', route: '/a' }]);
    expect(read(mergeThreadPieces([main], [worker], MAIN)!)).toEqual([
      { fn: 'handler', cpu: 10, labels: 'route=/a,thread=main' },
      { fn: 'resize', cpu: 30, labels: 'route=/a,thread=pool' },
    ]);
  });

  it('takes the workers\' CPU off the main engine\'s "Non JS threads activity" (it counted them), never below zero', () => {
    const main = piece([
      { fn: 'handler', cpu: 10 },
      { fn: NON_JS_THREADS_FUNCTION, cpu: 50 },
    ]);
    const workers = [piece([{ fn: 'resize', cpu: 30, thread: 'a' }]), piece([{ fn: 'render', cpu: 15, thread: 'b' }])];
    const merged = read(mergeThreadPieces([main], workers, MAIN)!);
    expect(merged.find((s) => s.fn === NON_JS_THREADS_FUNCTION)!.cpu).toBe(5); // GC, libuv: what is left
    const over = read(mergeThreadPieces([piece([{ fn: NON_JS_THREADS_FUNCTION, cpu: 20 }])], workers, MAIN)!);
    expect(over.find((s) => s.fn === NON_JS_THREADS_FUNCTION)!.cpu).toBe(0);
  });

  it('before any worker took part nothing changes: no thread label, the one piece as it is', () => {
    const main = piece([{ fn: 'handler', cpu: 10, route: '/a' }]);
    expect(mergeThreadPieces([main], [], undefined)).toBe(main);
    expect(read(main)).toEqual([{ fn: 'handler', cpu: 10, labels: 'route=/a' }]);
  });

  it('a main piece shared by two consumers is labelled once', () => {
    const main = piece([{ fn: 'handler', cpu: 10 }]);
    mergeThreadPieces([main], [], MAIN);
    expect(read(mergeThreadPieces([main], [], MAIN)!)).toEqual([{ fn: 'handler', cpu: 10, labels: 'thread=main' }]);
  });

  it('no piece at all: undefined', () => {
    expect(mergeThreadPieces([], [], MAIN)).toBeUndefined();
  });
});
