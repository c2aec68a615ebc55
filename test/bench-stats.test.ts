/**
 * bench/stats.js: the bootstrap intervals the bench reports (issue 15). Deterministic: every
 * random number comes from a seeded generator, so each figure below is exact and can fail.
 */
interface Interval {
  estimate: number;
  low: number;
  high: number;
  n: number;
}
interface BootstrapOptions {
  resamples?: number;
  confidence?: number;
  seed?: number;
  widen?: boolean;
}
interface Stats {
  widening(n: number, confidence: number): number;
  mulberry32(seed: number): () => number;
  mean(v: number[]): number;
  median(v: number[]): number;
  geometricMean(v: number[]): number;
  quantile(sorted: ArrayLike<number>, q: number): number;
  bootstrap(v: number[], statistic: (s: number[]) => number, o?: BootstrapOptions): Interval;
  pairedRatio(a: number[], b: number[], o?: BootstrapOptions): Interval;
  pairedDifference(a: number[], b: number[], o?: BootstrapOptions): Interval;
  pairedShare(a: number[], b: number[], base: number[], o?: BootstrapOptions): Interval;
  compare(i: Interval | undefined, reference?: number): string;
  checkAtMost(i: Interval | undefined, limit: number): string;
  latencyPercentiles(v: ArrayLike<number>): { p50: number; p99: number; p999: number; max: number; n: number } | undefined;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const stats = require('../bench/stats') as Stats;

/** Normal deviates from a seeded uniform generator (Box-Muller). */
function normals(seed: number, count: number): number[] {
  const rng = stats.mulberry32(seed);
  const out: number[] = [];
  while (out.length < count) {
    const u = 1 - rng();
    const v = rng();
    out.push(Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
  }
  return out;
}

/**
 * `rounds` paired rounds of a baseline and a configuration `trueRatio` times as expensive: each
 * round's machine speed moves both (shared factor, 20 % spread), and each measurement has its
 * own noise (`noise`, log scale), like slices seconds apart on a shared machine.
 */
function simulatedRun(seed: number, rounds: number, trueRatio: number, noise: number): { a: number[]; b: number[] } {
  const z = normals(seed, rounds * 3);
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const machine = 30 * Math.exp(0.2 * z[3 * i]);
    b.push(machine * Math.exp(noise * z[3 * i + 1]));
    a.push(machine * trueRatio * Math.exp(noise * z[3 * i + 2]));
  }
  return { a, b };
}

describe('bench statistics', () => {
  test('the generator is seeded: same seed, same sequence; values in [0, 1)', () => {
    const one = stats.mulberry32(42);
    const two = stats.mulberry32(42);
    const other = stats.mulberry32(43);
    const xs = Array.from({ length: 1000 }, () => one());
    expect(Array.from({ length: 1000 }, () => two())).toEqual(xs);
    expect(other()).not.toBe(xs[0]);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    // roughly uniform: the mean of 1000 draws within 0.05 of 0.5
    expect(Math.abs(stats.mean(xs) - 0.5)).toBeLessThan(0.05);
  });

  test('median, geometric mean and quantiles', () => {
    expect(stats.median([3, 1, 2])).toBe(2);
    expect(stats.median([4, 1, 3, 2])).toBe(2.5);
    expect(stats.median([NaN, 5])).toBe(5);
    expect(stats.median([])).toBeNaN();
    expect(stats.geometricMean([2, 8])).toBeCloseTo(4, 12);
    expect(stats.geometricMean([1.1, 1 / 1.1])).toBeCloseTo(1, 12);
    const sorted = [10, 20, 30, 40, 50];
    expect(stats.quantile(sorted, 0)).toBe(10);
    expect(stats.quantile(sorted, 1)).toBe(50);
    expect(stats.quantile(sorted, 0.5)).toBe(30);
    expect(stats.quantile(sorted, 0.125)).toBe(15); // between order statistics
  });

  test('identical rounds give an interval without width at the value', () => {
    const r = stats.pairedRatio([12, 24, 36], [10, 20, 30]);
    expect(r.estimate).toBeCloseTo(1.2, 12);
    expect(r.low).toBeCloseTo(1.2, 12);
    expect(r.high).toBeCloseTo(1.2, 12);
    expect(r.n).toBe(3);
  });

  test('the same figures always give the same interval; another seed, a slightly different one', () => {
    const { a, b } = simulatedRun(7, 10, 1.1, 0.04);
    const first = stats.pairedRatio(a, b);
    expect(stats.pairedRatio(a, b)).toEqual(first);
    const reseeded = stats.pairedRatio(a, b, { seed: 99 });
    expect(reseeded.estimate).toBe(first.estimate);
    expect(reseeded.low).not.toBe(first.low);
    expect(Math.abs(reseeded.low - first.low)).toBeLessThan(0.01);
  });

  test('the ratio is taken within each round: a machine slowing down between rounds does not widen it', () => {
    // the configuration costs exactly 1.05x in every round; the machine speed varies 4x
    const b = [10, 40, 15, 35, 20, 12];
    const a = b.map((x) => x * 1.05);
    const r = stats.pairedRatio(a, b);
    expect(r.low).toBeCloseTo(1.05, 12);
    expect(r.high).toBeCloseTo(1.05, 12);
    // a ratio of medians would have been exposed to the 4x spread; the paired one is not
    expect(stats.compare(r)).toBe('higher');
  });

  test('a 10 % cost with 4 % noise over 12 rounds is decided; an A/A pair is indistinguishable', () => {
    const costly = simulatedRun(1, 12, 1.1, 0.04);
    const r = stats.pairedRatio(costly.a, costly.b);
    expect(r.low).toBeGreaterThan(1);
    expect(r.low).toBeLessThan(1.1);
    expect(r.high).toBeGreaterThan(1.1);
    expect(stats.compare(r)).toBe('higher');
    expect(stats.compare(stats.pairedRatio(costly.b, costly.a))).toBe('lower');

    const aa = simulatedRun(2, 12, 1, 0.04);
    const noise = stats.pairedRatio(aa.a, aa.b);
    expect(noise.low).toBeLessThan(1);
    expect(noise.high).toBeGreaterThan(1);
    expect(stats.compare(noise)).toBe('indistinguishable');
  });

  test('95 % intervals hold the true ratio in about 95 % of simulated runs (coverage)', () => {
    const runs = 400;
    let covered = 0;
    let coveredPlain = 0;
    for (let run = 0; run < runs; run++) {
      const { a, b } = simulatedRun(1000 + run, 12, 1.07, 0.05);
      const r = stats.pairedRatio(a, b, { resamples: 500, seed: run + 1 });
      if (r.low <= 1.07 && 1.07 <= r.high) covered++;
      const plain = stats.pairedRatio(a, b, { resamples: 500, seed: run + 1, widen: false });
      if (plain.low <= 1.07 && 1.07 <= plain.high) coveredPlain++;
    }
    expect(covered / runs).toBeGreaterThan(0.92);
    expect(covered / runs).toBeLessThan(0.98);
    // without the small-sample widening the percentile interval is too narrow (about 91 % at 12 rounds)
    expect(coveredPlain).toBeLessThan(covered);
    expect(stats.widening(12, 0.95)).toBeCloseTo(Math.sqrt(12 / 11) * (2.201 / 1.959964), 6);
    expect(stats.widening(1, 0.95)).toBe(1);
    expect(stats.widening(12, 0.9)).toBe(1);
  });

  test('more rounds, narrower interval (about 1/sqrt(n))', () => {
    const width = (rounds: number): number => {
      let sum = 0;
      for (let seed = 1; seed <= 20; seed++) {
        const { a, b } = simulatedRun(seed, rounds, 1.05, 0.04);
        const r = stats.pairedRatio(a, b, { resamples: 500 });
        sum += r.high - r.low;
      }
      return sum / 20;
    };
    const ratio = width(8) / width(32);
    // sqrt(32 / 8) = 2, and more with the small-sample widening at 8 rounds
    expect(ratio).toBeGreaterThan(1.7);
    expect(ratio).toBeLessThan(3);
  });

  test('differences and shares are paired per round, in the unit given', () => {
    const floor = [20, 30, 40];
    const plugin = [21, 31.5, 41];
    const base = [19, 29, 39];
    const d = stats.pairedDifference(plugin, floor, { widen: false });
    expect(d.estimate).toBeCloseTo((1 + 1.5 + 1) / 3, 12);
    // resampled means of these three differences lie between the smallest and the largest
    expect(d.low).toBeGreaterThanOrEqual(1);
    expect(d.high).toBeLessThanOrEqual(1.5);
    // widened about the estimate for 3 rounds: sqrt(3/2) * 4.303 / 1.96 = 2.69 times as far out
    const wide = stats.pairedDifference(plugin, floor);
    expect(wide.estimate - wide.low).toBeCloseTo((d.estimate - d.low) * stats.widening(3, 0.95), 9);
    const s = stats.pairedShare(plugin, floor, base);
    expect(s.estimate).toBeCloseTo((1 / 19 + 1.5 / 29 + 1 / 39) / 3, 12);
    expect(() => stats.pairedRatio([1, 2], [1])).toThrow(/differ in number/);
    expect(() => stats.pairedShare([1, 2], [1, 2], [1])).toThrow(/differ in number/);
  });

  test('a ratio interval stays above zero however few and scattered the rounds', () => {
    const r = stats.pairedRatio([80, 33], [33, 80]);
    expect(r.estimate).toBeCloseTo(1, 12);
    expect(r.low).toBeGreaterThan(0);
    expect(r.low).toBeLessThan(1);
    expect(r.high).toBeGreaterThan(1);
    // symmetric on the log scale: low * high = estimate^2
    expect(r.low * r.high).toBeCloseTo(1, 9);
  });

  test('rounds missing a figure are dropped from the pairs, not counted as zero', () => {
    const r = stats.pairedRatio([2, NaN, 4], [1, 1, 2]);
    expect(r.n).toBe(2);
    expect(r.estimate).toBeCloseTo(2, 12);
    expect(stats.pairedRatio([], []).n).toBe(0);
    expect(stats.compare(stats.pairedRatio([], []))).toBe('n/a');
  });

  test('target checks: pass only when the whole interval is under the limit, fail only when all of it is over', () => {
    const at = (low: number, high: number): Interval => ({ estimate: (low + high) / 2, low, high, n: 10 });
    expect(stats.checkAtMost(at(0.01, 0.029), 0.03)).toBe('pass');
    expect(stats.checkAtMost(at(0.01, 0.03), 0.03)).toBe('pass');
    expect(stats.checkAtMost(at(0.02, 0.04), 0.03)).toBe('undecided');
    expect(stats.checkAtMost(at(0.031, 0.05), 0.03)).toBe('fail');
    expect(stats.checkAtMost(at(NaN, NaN), 0.03)).toBe('n/a');
    expect(stats.compare(at(0.98, 1.02))).toBe('indistinguishable');
    expect(stats.compare(at(1.01, 1.02))).toBe('higher');
    expect(stats.compare(at(0.9, 0.99))).toBe('lower');
    expect(stats.compare(at(0.9, 0.99), 0.95)).toBe('indistinguishable');
  });
});

describe('request latency percentiles (issue 19)', () => {
  test('nearest rank: p99.9 of 10,000 requests is the 10th slowest; NaN ignored; nothing gives undefined', () => {
    // 1..10000 ms, shuffled: the percentiles do not depend on the order requests were answered in
    const latencies = Float64Array.from({ length: 10_000 }, (_, i) => ((i * 7919) % 10_000) + 1);
    expect(stats.latencyPercentiles(latencies)).toEqual({ p50: 5000, p99: 9900, p999: 9990, max: 10_000, n: 10_000 });
    expect(stats.latencyPercentiles([3, NaN, 1, 2])).toEqual({ p50: 2, p99: 3, p999: 3, max: 3, n: 3 });
    expect(stats.latencyPercentiles([7])).toEqual({ p50: 7, p99: 7, p999: 7, max: 7, n: 1 });
    expect(stats.latencyPercentiles([])).toBeUndefined();
  });

  test('one 40 ms stall among 10,000 fast requests shows in max only, not in p99', () => {
    const latencies = new Array(10_000).fill(2);
    latencies[5000] = 40;
    expect(stats.latencyPercentiles(latencies)).toMatchObject({ p99: 2, p999: 2, max: 40 });
  });
});
