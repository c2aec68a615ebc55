/**
 * Label sets: the immutable objects the profiler attaches to samples.
 *
 * A label set is a frozen `Record<string, string>` whose names follow Pyroscope's rules and whose
 * values are already sanitized. They are built once (per route, per `withLabels` call) and shared
 * by reference: the profiler keeps a reference to the object that was current when a sample was
 * taken, so an object must never change after it has been handed out.
 */
import type { Labels } from '../types';
import { describeValue } from '../errors';
import { labelNameProblem, sanitizeLabelValue } from '../pyroscope-rules';

export const ROUTE_LABEL = 'route';
export const METHOD_LABEL = 'method';
/** Which JavaScript thread ran a sample, once worker threads take part (src/workers/): `main` or the worker's name. */
export const THREAD_LABEL = 'thread';
export const MAIN_THREAD = 'main';
/** The one route value of requests that matched no route (never the raw URL). */
export const NOT_FOUND_ROUTE = '(not found)';

/**
 * Label names the plugin sets itself. Static labels (route config, options) may not set them: a
 * static `route` would compete with the route pattern and make `route="..."` filters lie.
 * `withLabels` may (see runtimeLabelNameProblem): code the plugin cannot follow to a request
 * (a WebSocket library it does not know, a queue consumer) names its route itself.
 */
export const BUILTIN_LABEL_NAMES: ReadonlySet<string> = new Set([ROUTE_LABEL, METHOD_LABEL, THREAD_LABEL]);

/**
 * Default bound on the labels of one sample. Pyroscope allows 30 label names per series, 4 of
 * them its own, and the app's tags share the rest; 10 leaves room for a dozen tags.
 */
export const DEFAULT_MAX_LABELS_PER_SAMPLE = 10;

export const EMPTY_LABELS: Labels = Object.freeze({});

/**
 * Why `name` cannot be a label name, or undefined when it can.
 * The text completes a sentence like `label name "x" ...`.
 */
export function userLabelNameProblem(name: string): string | undefined {
  if (name === THREAD_LABEL) return 'is set by the plugin itself (the thread that ran the sample)';
  if (BUILTIN_LABEL_NAMES.has(name)) return 'is set by the plugin itself (turn it off with the labels option)';
  return labelNameProblem(name);
}

/**
 * Why `name` cannot be a `withLabels` label name, or undefined when it can: `route` and `method`
 * are allowed there (the value replaces the request's for that function; the cardinality cap of
 * `maxLabelValues` applies to it as to every label). `thread` is not: it says which thread ran a
 * sample, and the plugin would leave a sample that already carries one as it is.
 */
export function runtimeLabelNameProblem(name: string): string | undefined {
  if (name === THREAD_LABEL) return 'is set by the plugin itself (the thread that ran the sample)';
  return labelNameProblem(name);
}

/**
 * A user-supplied value as a label value, or undefined when it cannot be one.
 * Strings are sanitized (forbidden characters replaced, cut at Pyroscope's length limit);
 * numbers and booleans are accepted as their string form, since JavaScript callers pass them
 * in good faith. Empty strings are refused: Pyroscope treats an empty value as no label.
 */
export function labelValueOf(value: unknown): string | undefined {
  let text: string;
  if (typeof value === 'string') text = value;
  else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') text = String(value);
  else return undefined;
  return text.length === 0 ? undefined : sanitizeLabelValue(text);
}

/**
 * A route pattern as a label value. Patterns may hold characters Pyroscope forbids in values
 * (regex routes like `/f/:n(^\d{2,3}$)`): those are replaced, never the pattern dropped.
 */
export function sanitizedRoute(url: string): string {
  return url.length === 0 ? '/' : sanitizeLabelValue(url);
}

/** What happened to entries that did not make it into a label set. */
export interface LabelSetDrops {
  /** entries refused for their name (invalid or built-in) */
  invalidNames: number;
  /** entries refused for their value (not a string/number/boolean, or empty) */
  invalidValues: number;
  /** entries refused because the set was full */
  overLimit: number;
}

export function noDrops(): LabelSetDrops {
  return { invalidNames: 0, invalidValues: 0, overLimit: 0 };
}

/**
 * Builds one frozen label set: `base` first (its entries are trusted, already clean), then the
 * user's `extra` entries, each checked and sanitized. An extra entry with a name already in the
 * set replaces the value; a new name is added only while the set holds fewer than `maxLabels`.
 * Refused entries are tallied in `drops` (nothing is dropped silently). `nameProblem` says which
 * names are refused: static labels by default, runtimeLabelNameProblem for `withLabels`.
 */
export function extendLabels(
  base: Labels | undefined,
  extra: Readonly<Record<string, unknown>>,
  maxLabels: number,
  drops: LabelSetDrops,
  nameProblem: (name: string) => string | undefined = userLabelNameProblem,
): Labels {
  const out: Record<string, string> = base === undefined ? {} : { ...base };
  let count = base === undefined ? 0 : Object.keys(base).length;
  for (const name of Object.keys(extra)) {
    if (nameProblem(name) !== undefined) {
      drops.invalidNames++;
      continue;
    }
    const value = labelValueOf(extra[name]);
    if (value === undefined) {
      drops.invalidValues++;
      continue;
    }
    if (!Object.prototype.hasOwnProperty.call(out, name)) {
      if (count >= maxLabels) {
        drops.overLimit++;
        continue;
      }
      count++;
    }
    out[name] = value;
  }
  return Object.freeze(out);
}

/**
 * Why `labels` cannot serve as static labels (route config or plugin options), or undefined.
 * `where` names the setting in the message, e.g. `config.profiling.labels of route GET /pay`.
 * Checks: a plain object, at most `maxLabels` entries, every name valid and not built-in,
 * every value a non-empty string (static config is refused rather than rewritten).
 */
export function validateStaticLabels(
  where: string,
  labels: unknown,
  maxLabels: number = DEFAULT_MAX_LABELS_PER_SAMPLE,
): string | undefined {
  if (labels === null || typeof labels !== 'object' || Array.isArray(labels)) {
    return `${where} must be an object of label names to string values, received ${describeValue(where, labels)}`;
  }
  const names = Object.keys(labels);
  if (names.length > maxLabels) {
    return `${where} has ${names.length} labels, at most ${maxLabels} are allowed per sample`;
  }
  for (const name of names) {
    const problem = userLabelNameProblem(name);
    if (problem !== undefined) return `${where}: label name ${JSON.stringify(name)} ${problem}`;
    const value = (labels as Record<string, unknown>)[name];
    if (typeof value !== 'string' || value.length === 0) {
      return `${where}: label ${JSON.stringify(name)} must have a non-empty string value, received ${describeValue(where, value)}`;
    }
  }
  return undefined;
}

/**
 * Why a route's `config.profiling` is unusable, or undefined. Accepted: undefined, `true`
 * (same as absent), `false` (no labels for the route), `{ labels?: {...} }`.
 */
export function routeProfilingConfigProblem(where: string, value: unknown): string | undefined {
  if (value === undefined || typeof value === 'boolean') return undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return `${where} must be false or an object like { labels: { team: 'payments' } }, received ${describeValue(where, value)}`;
  }
  const labels = (value as { labels?: unknown }).labels;
  return labels === undefined ? undefined : validateStaticLabels(`${where}.labels`, labels);
}
