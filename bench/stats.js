'use strict';
/**
 * The bench's statistics (issue 15): how sure a ratio is, from the paired rounds of one run.
 *
 * Every configuration of a phase is measured once per round, in turn, so round i of two
 * configurations saw about the same machine. The per-round ratio a_i / b_i cancels what moved the
 * whole machine during that round (throttling, the other users' load); what is left scatters
 * from round to round, and a percentile bootstrap over the rounds (resample the rounds with
 * replacement, recompute the statistic, take the 2.5th and 97.5th percentiles of 2,000 such
 * resamples) turns that scatter into a 95 % interval without assuming a distribution.
 *
 * Ratios are summarised by their geometric mean (the mean of the logs, bootstrapped on the logs):
 * symmetric for ratios (1.1 and 1/1.1 cancel) and smooth under resampling, where a median of 8-12
 * rounds jumps between a few values. Differences (µs per request) by their mean.
 *
 * The random numbers come from a seeded generator, so the same figures always give the same
 * interval (and the unit test can check the math exactly).
 */

/** mulberry32: a small, fast, seedable PRNG with a full 2^32 period; returns floats in [0, 1). */
function mulberry32(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const finite = (values) => values.filter((x) => Number.isFinite(x));

function mean(values) {
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

function median(values) {
  const v = finite(values).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function geometricMean(values) {
  let sum = 0;
  for (const v of values) sum += Math.log(v);
  return Math.exp(sum / values.length);
}

/** The q-quantile of an ascending array, linear between order statistics (R's type 7). */
function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

const DEFAULTS = { resamples: 2000, confidence: 0.95, seed: 15 };

/** Student's t, 97.5th percentile, for 1..30 degrees of freedom. */
const T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];
const Z975 = 1.959964;

/**
 * How much to widen a 95 % percentile-bootstrap interval drawn from n rounds. The plain
 * percentile interval is too narrow with few rounds: it covered the true ratio in 87 % of
 * simulated 6-round runs, 91 % at 12 and 92 % at 20 (2,000 runs each, test/bench-stats.test.ts's
 * model). Widening it about its estimate by sqrt(n / (n - 1)) * t(n-1) / z, the small-sample
 * corrections of the t interval (Hesterberg's "expanded percentile" idea), brings it to about 95 %.
 */
function widening(n, confidence) {
  if (confidence !== 0.95 || n < 2) return 1;
  const t = n - 1 <= T975.length ? T975[n - 2] : Z975 + 2.4 / (n - 1);
  return (Math.sqrt(n / (n - 1)) * t) / Z975;
}

/**
 * Percentile bootstrap of `statistic` over `values` (one value per round).
 * Returns { estimate, low, high, n }; NaN bounds when there is no value. `widen: false` gives the
 * plain percentile interval (see widening()). With a single value the
 * interval has no width: one round says nothing about the noise, and the report says so.
 */
function bootstrap(values, statistic, options = {}) {
  const { resamples, confidence, seed } = { ...DEFAULTS, ...options };
  const v = finite(values);
  const n = v.length;
  if (n === 0) return { estimate: NaN, low: NaN, high: NaN, n: 0 };
  const rng = mulberry32(seed);
  const stats = new Float64Array(resamples);
  const sample = new Array(n);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < n; i++) sample[i] = v[Math.floor(rng() * n)];
    stats[r] = statistic(sample);
  }
  stats.sort();
  const alpha = 1 - confidence;
  const estimate = statistic(v);
  const widen = options.widen === false ? 1 : widening(n, confidence);
  const low = estimate - (estimate - quantile(stats, alpha / 2)) * widen;
  const high = estimate + (quantile(stats, 1 - alpha / 2) - estimate) * widen;
  return { estimate, low, high, n };
}

/** Pairs round i of `a` with round i of `b`, dropping rounds where either is missing. */
function paired(a, b, combine) {
  if (a.length !== b.length) throw new Error(`paired rounds differ in number: ${a.length} and ${b.length}`);
  const out = [];
  for (let i = 0; i < a.length; i++) {
    const x = combine(a[i], b[i], i);
    if (Number.isFinite(x)) out.push(x);
  }
  return out;
}

/**
 * a / b: the geometric mean of the per-round ratios, with its interval. The bootstrap runs on the
 * logs of the ratios (where the widening for few rounds is symmetric) and comes back by exp(), so
 * a ratio's interval can never reach zero or below however few the rounds.
 */
function pairedRatio(a, b, options) {
  const logs = paired(a, b, (x, y) => (x > 0 && y > 0 ? Math.log(x / y) : NaN));
  const onLogs = bootstrap(logs, mean, options);
  return { estimate: Math.exp(onLogs.estimate), low: Math.exp(onLogs.low), high: Math.exp(onLogs.high), n: onLogs.n };
}

/** a - b, the mean of the per-round differences, with its interval (same unit as a and b). */
function pairedDifference(a, b, options) {
  return bootstrap(paired(a, b, (x, y) => x - y), mean, options);
}

/** (a - b) / base per round, as a share of `base` (e.g. of the unprofiled request's cost). */
function pairedShare(a, b, base, options) {
  if (base.length !== a.length) throw new Error(`paired rounds differ in number: ${a.length} and ${base.length}`);
  return bootstrap(paired(a, b, (x, y, i) => (base[i] > 0 ? (x - y) / base[i] : NaN)), mean, options);
}

/**
 * Where an interval lies against a reference value: 'higher' or 'lower' when it excludes it,
 * 'indistinguishable' when it includes it, 'n/a' without an interval.
 */
function compare(interval, reference = 1) {
  if (!interval || !Number.isFinite(interval.low) || !Number.isFinite(interval.high)) return 'n/a';
  if (interval.low > reference) return 'higher';
  if (interval.high < reference) return 'lower';
  return 'indistinguishable';
}

/**
 * A target of the form "at most `limit`": 'pass' when the whole interval is at or under it,
 * 'fail' when the whole interval is over it, 'undecided' when it straddles the limit (the run
 * was too noisy or too short to tell), 'n/a' without an interval.
 */
function checkAtMost(interval, limit) {
  if (!interval || !Number.isFinite(interval.low) || !Number.isFinite(interval.high)) return 'n/a';
  if (interval.high <= limit) return 'pass';
  if (interval.low > limit) return 'fail';
  return 'undecided';
}

/**
 * Request latencies (ms) of one slice as p50 / p99 / p99.9 / max: nearest-rank percentiles (the
 * smallest latency with at least that share of the requests at or under it), so p99.9 of 10,000
 * requests is the 10th slowest. Undefined without a latency.
 */
function latencyPercentiles(values) {
  const v = Float64Array.from(finite(values)).sort();
  if (v.length === 0) return undefined;
  const rank = (q) => v[Math.min(v.length - 1, Math.max(0, Math.ceil(q * v.length) - 1))];
  return { p50: rank(0.5), p99: rank(0.99), p999: rank(0.999), max: v[v.length - 1], n: v.length };
}

module.exports = {
  DEFAULTS,
  latencyPercentiles,
  widening,
  mulberry32,
  mean,
  median,
  geometricMean,
  quantile,
  bootstrap,
  pairedRatio,
  pairedDifference,
  pairedShare,
  compare,
  checkAtMost,
};
