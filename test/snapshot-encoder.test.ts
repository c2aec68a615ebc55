/**
 * SnapshotEncoder (src/profilers/snapshot-encoder.ts): an unchanged heap snapshot is not rewritten
 * or encoded again, and what is uploaded decodes to exactly what a fresh encoding gives (every
 * window still carries its heap profile, with its own interval and `(external)` value).
 */
import { gunzipSync } from 'node:zlib';
import { heap } from '@datadog/pprof';
import { Function as PprofFunction, Line, Location, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import { EngineProfiler } from '../src/profilers';
import { FrameRewriter } from '../src/profilers/frames';
import { PathCleaner } from '../src/profilers/paths';
import { SnapshotEncoder } from '../src/profilers/snapshot-encoder';
import type { FrameQuery, FrameSymbolizer, LookupOutcome, OriginalFrame } from '../src/profilers/source-maps';

/** A heap profile as the engine builds it (fresh objects every call): two live stacks and `(external)`. */
function engineHeap({ external = 2_000_000, liveBytes = 524_288, column = 0 } = {}): Profile {
  const strings = new StringTable();
  const fn = (id: number, name: string, file: string) => new PprofFunction({ id, name: strings.dedup(name), systemName: strings.dedup(name), filename: strings.dedup(file) });
  const functions = [fn(1, 'handler', '/app/src/routes.js'), fn(2, 'cache', '/app/src/cache.js'), fn(3, '(external)', '')];
  const location = (id: number) => new Location({ id, line: [new Line({ functionId: id, line: 10 * id, column })] });
  return new Profile({
    sampleType: [new ValueType({ type: strings.dedup('inuse_objects'), unit: strings.dedup('count') }), new ValueType({ type: strings.dedup('inuse_space'), unit: strings.dedup('bytes') })],
    sample: [
      new Sample({ locationId: [2, 1], value: [1, liveBytes] }),
      new Sample({ locationId: [1], value: [3, 3 * 524_288] }),
      new Sample({ locationId: [3], value: [1, external] }),
    ],
    location: [location(1), location(2), location(3)],
    function: functions,
    stringTable: strings,
    periodType: new ValueType({ type: strings.dedup('space'), unit: strings.dedup('bytes') }),
    period: 524_288,
  });
}

/** The decoded upload, in a form two encodings can be compared by (sample order does not count in pprof). */
function decoded(body: Buffer) {
  const p = Profile.decode(gunzipSync(body));
  const str = (i: unknown) => p.stringTable.strings[Number(i)];
  const fnName = (id: unknown) => str(p.function.find((f) => Number(f.id) === Number(id))?.name);
  const frames = (ids: unknown[]) => ids.map((id) => p.location.find((l) => Number(l.id) === Number(id))!.line.map((l) => fnName(l.functionId)).join(';'));
  return {
    timeNanos: Number(p.timeNanos),
    durationNanos: Number(p.durationNanos),
    sampleTypes: p.sampleType.map((t) => `${str(t.type)}/${str(t.unit)}`),
    samples: p.sample.map((s) => `${frames(s.locationId).join(' <- ')} = ${s.value.map(Number).join(',')}`).sort(),
    files: p.function.map((f) => str(f.filename)).sort(),
    period: Number(p.period),
  };
}

const rewriter = (sourceMaps?: FrameSymbolizer) => new FrameRewriter(new PathCleaner({ root: '/app', absolutePaths: false }), sourceMaps);

describe('SnapshotEncoder', () => {
  it('rewrites and encodes an unchanged snapshot once; every window decodes to what a fresh encoding gives', async () => {
    const frames = rewriter();
    const rewrite = jest.spyOn(frames, 'rewrite');
    const encoder = new SnapshotEncoder(frames);
    const first = await encoder.encode(engineHeap({ external: 2_000_000 }), 1_000_000, 15_000);
    const second = await encoder.encode(engineHeap({ external: 2_000_040 }), 1_015_000, 15_000);
    expect(rewrite).toHaveBeenCalledTimes(1);
    expect(encoder.reused).toBe(1);

    const fresh = await new SnapshotEncoder(rewriter()).encode(engineHeap({ external: 2_000_040 }), 1_015_000, 15_000);
    expect(decoded(second)).toEqual(decoded(fresh));
    // each window has its own interval and its own external memory, the live stacks cleaned once
    expect(decoded(first)).toMatchObject({ timeNanos: 1_000_000 * 1e6, durationNanos: 15_000 * 1e6 });
    expect(decoded(second)).toMatchObject({ timeNanos: 1_015_000 * 1e6, durationNanos: 15_000 * 1e6, period: 524_288 });
    expect(decoded(second).samples).toEqual(['(external) = 1,2000040', 'cache <- handler = 1,524288', 'handler = 3,1572864']);
    expect(decoded(first).samples).toContain('(external) = 1,2000000');
    expect(decoded(second).files).toEqual(['', 'src/cache.js', 'src/routes.js']);
  });

  it('encodes again when a live allocation changed, and sends the new one', async () => {
    const frames = rewriter();
    const rewrite = jest.spyOn(frames, 'rewrite');
    const encoder = new SnapshotEncoder(frames);
    await encoder.encode(engineHeap(), 0, 1000);
    const changed = await encoder.encode(engineHeap({ liveBytes: 2 * 524_288 }), 1000, 1000);
    expect(rewrite).toHaveBeenCalledTimes(2);
    expect(encoder.reused).toBe(0);
    expect(decoded(changed).samples).toContain('cache <- handler = 1,1048576');
  });

  it('leaves the profile it was given with all its samples (the window counts them)', async () => {
    const profile = engineHeap();
    await new SnapshotEncoder(rewriter()).encode(profile, 0, 1000);
    expect(profile.sample).toHaveLength(3);
  });

  it('does not keep a rewrite whose source-map lookup timed out: the next window gets the mapped frames', async () => {
    let calls = 0;
    const maps: FrameSymbolizer = {
      async lookupAll(queries: readonly FrameQuery[], outcome?: LookupOutcome): Promise<(OriginalFrame | undefined)[]> {
        calls++;
        if (calls === 1) {
          if (outcome) outcome.complete = false; // as SourceMapWorker after LOOKUP_TIMEOUT_MS
          return queries.map(() => undefined);
        }
        return queries.map((q) => ({ file: q.script.replace(/\.js$/, '.ts'), line: q.line - 1, name: `${q.name}Original` }));
      },
      stats: () => ({ sourceMapErrors: 0, sourceMapsCached: 0, sourceMapCacheBytes: 0 }),
      close: async () => undefined,
    };
    const encoder = new SnapshotEncoder(rewriter(maps));
    const compiled = await encoder.encode(engineHeap({ column: 5 }), 0, 1000);
    const mapped = await encoder.encode(engineHeap({ column: 5 }), 1000, 1000);
    const third = await encoder.encode(engineHeap({ column: 5 }), 2000, 1000);
    expect(decoded(compiled).files).toContain('src/routes.js');
    expect(decoded(mapped).files).toEqual(['', 'src/cache.ts', 'src/routes.ts']);
    expect(decoded(mapped).samples).toContain('cacheOriginal <- handlerOriginal = 1,524288');
    // the mapped rewrite is final: kept
    expect(encoder.reused).toBe(1);
    expect(calls).toBe(2);
    expect(decoded(third).samples).toEqual(decoded(mapped).samples);
  });
});

describe('EngineProfiler heap windows (real heap sampler)', () => {
  afterEach(() => {
    // a failed test must not leave the process's one heap sampler running
    try {
      heap.stop();
    } catch {
      // already stopped
    }
  });

  it('uploads a heap profile in every window, each with its own interval, also when reused', async () => {
    const profiler = new EngineProfiler({ sampleRate: 100, heapSamplingInterval: 16 * 1024, profileTypes: { cpu: false, wall: false, heap: true }, windowMs: 1000 });
    profiler.start();
    const retained = Array.from({ length: 20_000 }, (_, i) => ({ i, text: `retained ${i}` }));
    const windows = [];
    for (let w = 0; w < 4; w++) {
      const window = { startMs: 1_700_000_000_000 + w * 1000, endMs: 1_700_000_001_000 + w * 1000 };
      windows.push({ window, collected: w < 3 ? await profiler.collect(window) : await profiler.stop(window) });
    }
    expect(retained).toHaveLength(20_000);
    for (const { window, collected } of windows) {
      expect(collected.profiles.map((p) => p.kind)).toEqual(['heap']);
      const d = decoded(collected.profiles[0].body);
      expect(d).toMatchObject({ timeNanos: window.startMs * 1e6, durationNanos: 1000 * 1e6 });
      expect(d.sampleTypes).toEqual(expect.arrayContaining(['inuse_space/bytes']));
      expect(d.samples.some((s) => s.startsWith('(external) = 1,'))).toBe(true);
      expect(collected.profiles[0].sampleCount).toBe(Profile.decode(gunzipSync(collected.profiles[0].body)).sample.length);
    }
  });
});
