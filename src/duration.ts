/**
 * Durations as users write them: a number of milliseconds, or a Go duration string
 * (`'500ms'`, `'15s'`, `'2m'`, `'1h30m'`, `'1.5s'`) as go-zero configs do.
 */

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const GO_DURATION = /^(?:\d+(?:\.\d+)?|\.\d+)(?:ns|us|µs|ms|s|m|h)(?:(?:\d+(?:\.\d+)?|\.\d+)(?:ns|us|µs|ms|s|m|h))*$/;
const GO_DURATION_PART = /(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|ms|s|m|h)/g;

/**
 * Milliseconds for a duration, or undefined when the value is not one.
 * Results are rounded to whole milliseconds (the timers' resolution).
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') {
    return Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined;
  }
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (text === '0') return 0;
  if (!GO_DURATION.test(text)) return undefined;
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(GO_DURATION_PART)) {
    ms += Number(amount) * UNIT_MS[unit];
  }
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

/** A short human form for logs and messages: 1500 -> '1.5s', 120000 -> '2m'. */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms >= 1000) return `${ms / 1000}s`;
  return `${ms}ms`;
}
