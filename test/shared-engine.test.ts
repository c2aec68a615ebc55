/**
 * The shared engine (one V8 time profiler, one heap sampler, many consumers) and the merge of
 * the pieces a consumer's window was cut into.
 */
import { heap, time } from '@datadog/pprof';
import { Function as PprofFunction, Label, Line, Location, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import { mergeProfiles, SharedEngine } from '../src/profilers';
import { sampleLabels, sampleTypeNames, selfValueByFunction } from './helpers/ingest-stand-in';

/** Busy for `ms` of wall time (plain arithmetic: Jest's VM makes Math.* slow). */
function burn(ms: number): number {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) for (let i = 0; i < 10_000; i++) x = (x + i * i) % 1_000_003;
  return x;
}

/** A CPU profile with one sample per [function name, cpu ns, route] entry; ids differ per call. */
function cpuProfile(entries: Array<[string, number, string?]>, idOffset: number): Profile {
  const strings = new StringTable();
  strings.dedup('padding-' + idOffset); // so the same names get other string ids than in the other profile
  const functions: PprofFunction[] = [];
  const locations: Location[] = [];
  const samples: Sample[] = [];
  for (const [name, cpu, route] of entries) {
    const id = idOffset + functions.length + 1;
    functions.push(new PprofFunction({ id, name: strings.dedup(name), systemName: strings.dedup(name), filename: strings.dedup('app.js') }));
    locations.push(new Location({ id, line: [new Line({ functionId: id, line: 3 })] }));
    const label = route === undefined ? [] : [new Label({ key: strings.dedup('route'), str: strings.dedup(route) })];
    samples.push(new Sample({ locationId: [id], value: [1, cpu], label }));
  }
  return new Profile({
    sampleType: [new ValueType({ type: strings.dedup('samples'), unit: strings.dedup('count') }), new ValueType({ type: strings.dedup('cpu'), unit: strings.dedup('nanoseconds') })],
    sample: samples,
    location: locations,
    function: functions,
    stringTable: strings,
    timeNanos: 1_000 + idOffset,
    durationNanos: 500,
  });
}

describe('mergeProfiles', () => {
  it('keeps every sample with its function names and labels, under one string table', () => {
    const a = cpuProfile([['simulateCPULoad', 700, '/ping'], ['handler', 100, '/ping']], 0);
    const b = cpuProfile([['simulateCPULoad', 300, '/ping'], ['other', 50]], 40);
    const merged = mergeProfiles([a, b]);
    expect(sampleTypeNames(merged)).toEqual(['samples/count', 'cpu/nanoseconds']);
    expect(Object.fromEntries(selfValueByFunction(merged, 'cpu'))).toEqual({ simulateCPULoad: 1000, handler: 100, other: 50 });
    expect(merged.function).toHaveLength(3); // the same function in both is one function
    expect(merged.sample.map((s) => sampleLabels(merged, s).route)).toEqual(['/ping', '/ping', '/ping', undefined]);
    expect(Number(merged.timeNanos)).toBe(1_000);
    expect(Number(merged.durationNanos)).toBe(1_000);
    expect(mergeProfiles([a])).toBe(a);
  });

  it('refuses profiles of different sample types', () => {
    const wall = cpuProfile([['f', 1]], 0);
    wall.sampleType[1] = new ValueType({ type: wall.stringTable.dedup('wall'), unit: wall.stringTable.dedup('nanoseconds') });
    expect(() => mergeProfiles([cpuProfile([['f', 1]], 0), wall])).toThrow(/sample types differ/);
  });
});

describe('SharedEngine', () => {
  const labeler = {
    timeProfilerOptions: () => ({ withContexts: true as const, useCPED: false }),
    activate: () => undefined,
    deactivate: () => undefined,
    generateLabels: () => ({}),
  };
  const engine = (): SharedEngine => new SharedEngine({ sampleRate: 1000, heapSamplingInterval: 65_536, collectCpuTime: true, windowMs: 1000, labeler });

  afterEach(() => {
    if (time.isStarted()) time.stop(false);
  });

  it('a consumer joining and leaving mid-window cuts pieces that go to everyone in: nothing lost, nothing stolen', () => {
    const shared = engine();
    const push = shared.joinTime();
    expect(time.isStarted()).toBe(true);
    burn(50);
    const capture = shared.joinTime(); // cuts: the first 50 ms are the push's alone
    const start = jest.spyOn(time, 'start');
    burn(50);
    const captured = shared.leaveTime(capture); // cuts again: these 50 ms go to both
    burn(50);
    const pushed = shared.takeTime(push);
    expect(start).not.toHaveBeenCalled(); // the engine ran on, no restart
    expect(captured).toHaveLength(1);
    expect(pushed).toHaveLength(3);
    expect(pushed[1]).toBe(captured[0]); // the same piece, in both
    const cpu = (p: Profile): number => selfValueByFunction(p, 'cpu').reduce((s, [, v]) => s + v, 0);
    expect(cpu(captured[0])).toBeGreaterThan(0);
    expect(cpu(mergeProfiles(pushed))).toBeGreaterThan(cpu(captured[0]));
    expect(time.isStarted()).toBe(true);
    shared.leaveTime(push); // the last one out stops the engine
    expect(time.isStarted()).toBe(false);
    start.mockRestore();
  });

  it('the first consumer starts the engine for itself alone; a start failure changes nothing', () => {
    time.start({ intervalMicros: 10_000, durationMillis: 60_000 }); // someone else's profiler
    const shared = engine();
    expect(() => shared.joinTime()).toThrow(/already started/);
    expect(shared.timeConsumers).toBe(0);
    time.stop(false);
    const alone = shared.joinTime();
    burn(20);
    expect(shared.leaveTime(alone).length).toBe(1);
    expect(time.isStarted()).toBe(false);
  });

  it('the heap sampler runs while anyone holds it', () => {
    const shared = engine();
    shared.heap.acquire();
    shared.heap.acquire();
    expect(shared.heap.snapshot()?.kind).toBe('heap');
    shared.heap.release();
    expect(shared.heap.running).toBe(true);
    shared.heap.release();
    expect(shared.heap.running).toBe(false);
    expect(shared.heap.snapshot()).toBeUndefined();
    heap.start(65_536, 64); // released for real: someone else can take it
    heap.stop();
  });
});
