/**
 * The time profiler over the real engine: how it starts the engine, and its recovery when the
 * engine reports V8's sampler stuck (forced here through the engine's own detector).
 */
import { time } from '@datadog/pprof';
import { TimeProfiler, type SampleLabeler } from '../src/profilers/time';

function labeler(): SampleLabeler & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    timeProfilerOptions: () => ({ withContexts: true, useCPED: false }),
    activate: () => void calls.push('activate'),
    deactivate: () => void calls.push('deactivate'),
    generateLabels: () => ({}),
  };
}

/** Busy for `ms` of wall time (plain arithmetic: Jest's VM makes Math.* slow). */
function burn(ms: number): number {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) for (let i = 0; i < 10_000; i++) x = (x + i * i) % 1_000_003;
  return x;
}

const samplesOf = (views: ReturnType<TimeProfiler['collect']>): number =>
  views.reduce((sum, v) => sum + v.profile.sample.length, 0);

/** A started profiler whose engine answers `answers` to its next stuck checks; `start` watches restarts. */
function startedWithStuckAnswers(sampleRate: number, answers: number[]) {
  const profiler = new TimeProfiler({ sampleRate, cpu: true, wall: false, windowMs: 1000, labeler: labeler() });
  profiler.start();
  const start = jest.spyOn(time, 'start');
  const stuck = jest.spyOn(time, 'v8ProfilerStuckEventLoopDetected');
  for (const answer of answers) stuck.mockReturnValueOnce(answer);
  return { profiler, start };
}

afterEach(() => {
  if (time.isStarted()) time.stop(false);
  jest.restoreAllMocks();
});

test('starts the engine without its sleeping restart workaround, and keeps sampling across windows', () => {
  const start = jest.spyOn(time, 'start');
  const profiler = new TimeProfiler({ sampleRate: 1000, cpu: true, wall: false, windowMs: 1000, labeler: labeler() });
  profiler.start();
  expect(start).toHaveBeenCalledWith(expect.objectContaining({ workaroundV8Bug: false, withContexts: true, intervalMicros: 1000 }));
  for (let window = 0; window < 3; window++) {
    burn(60);
    const views = profiler.collect();
    expect(views.map((v) => v.kind)).toEqual(['cpu']);
    expect(samplesOf(views)).toBeGreaterThan(0);
  }
  expect(profiler.samplerRestarts).toBe(0);
  profiler.stop();
  expect(time.isStarted()).toBe(false);
});

test('two long windows in a row the engine calls stuck for certain restart the engine (labels re-activated); sampling goes on', () => {
  const labels = labeler();
  const profiler = new TimeProfiler({ sampleRate: 1000, cpu: true, wall: false, windowMs: 1000, labeler: labels });
  profiler.start();
  const stuck = jest.spyOn(time, 'v8ProfilerStuckEventLoopDetected').mockReturnValueOnce(2).mockReturnValueOnce(2);
  const start = jest.spyOn(time, 'start');
  burn(60); // 60 sample periods: a window this long without a tick is no accident...
  profiler.collect();
  expect(profiler.samplerRestarts).toBe(0); // ...but one such window may be a stalled machine
  burn(60);
  profiler.collect();
  expect(stuck).toHaveBeenCalledTimes(2);
  expect(profiler.samplerRestarts).toBe(1);
  expect(start).toHaveBeenCalledTimes(1);
  expect(labels.calls).toEqual(['activate', 'deactivate', 'activate']);
  expect(profiler.running).toBe(true);
  burn(60);
  expect(samplesOf(profiler.collect())).toBeGreaterThan(0);
  expect(profiler.samplerRestarts).toBe(1);
  profiler.stop();
});

test('"possibly stuck" (1), or "stuck" over windows of a few sample periods, restarts nothing', () => {
  // 2 Hz: a window must last 10 s to count as long; back-to-back collect() calls took over 2 s
  // on a machine at load 17, which made 20 periods of 100 ms (10 Hz) too short a margin.
  const { profiler, start } = startedWithStuckAnswers(2, [1, 2, 2]);
  profiler.collect(); // "maybe": false positives happen
  profiler.collect(); // 2, but the window is far shorter than 20 periods of 500 ms
  profiler.collect(); // again
  expect(start).not.toHaveBeenCalled();
  expect(profiler.samplerRestarts).toBe(0);
  profiler.stop();
});

test('a long stuck window followed by a sampled one restarts nothing (a stalled machine, not a stuck sampler)', () => {
  const { profiler, start } = startedWithStuckAnswers(1000, [2, 0, 2]);
  for (let window = 0; window < 3; window++) {
    burn(30);
    profiler.collect();
  }
  expect(start).not.toHaveBeenCalled();
  expect(profiler.samplerRestarts).toBe(0);
  profiler.stop();
});
