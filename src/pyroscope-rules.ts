/**
 * What Grafana Pyroscope's ingest accepts (see shared notes, "Pyroscope's ingest API").
 * One place for these rules so options, labels and exporters agree.
 */

/** App name: non-empty, `[A-Za-z0-9_.-/]` only. */
export const APP_NAME_PATTERN = /^[A-Za-z0-9_.\-/]+$/;

/** Tag keys and sample label keys: non-empty, `[A-Za-z0-9_.]` only. */
export const LABEL_NAME_PATTERN = /^[A-Za-z0-9_.]+$/;

/** Series label budget: at most 30 label names per series. */
export const MAX_SERIES_LABELS = 30;

/** Labels Pyroscope adds to every series itself: __name__, __delta__, pyroscope_spy, service_name. */
export const SERVER_SERIES_LABELS = 4;

/** Longest label name and value Pyroscope stores. */
export const MAX_LABEL_NAME_LENGTH = 1024;
export const MAX_LABEL_VALUE_LENGTH = 2048;

/** Per-profile ingest limits (answered 422 beyond them). */
export const MAX_SAMPLES_PER_PROFILE = 16_000;
export const MAX_PROFILE_BYTES = 4 * 1024 * 1024;

/** Label names Pyroscope reserves or derives itself; users may not set them as tags or labels. */
export const RESERVED_LABEL_NAMES: ReadonlySet<string> = new Set([
  '__name__',
  '__delta__',
  'pyroscope_spy',
  'service_name',
]);

/**
 * Why a tag or label name is refused, or undefined when it is fine.
 * The text completes a sentence like "tags key 'x' ...".
 */
export function labelNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'must not be empty';
  if (name.length > MAX_LABEL_NAME_LENGTH) return `must be at most ${MAX_LABEL_NAME_LENGTH} characters`;
  if (!LABEL_NAME_PATTERN.test(name)) return 'may contain only letters, digits, "_" and "."';
  if (RESERVED_LABEL_NAMES.has(name)) return 'is reserved by Pyroscope';
  return undefined;
}

/**
 * Characters that are the syntax of the ingest `name` parameter (`app{k=v,k2=v2}`) or that
 * break a label value: replaced by `_` in values. Control characters go too.
 */
// eslint-disable-next-line no-control-regex
const VALUE_FORBIDDEN = /[{},=\u0000-\u001f\u007f]/;
// eslint-disable-next-line no-control-regex
const VALUE_FORBIDDEN_ALL = /[{},=\u0000-\u001f\u007f]/g;

/** Make a label or tag value safe for Pyroscope: forbidden characters replaced, length cut. */
export function sanitizeLabelValue(value: string, maxLength: number = MAX_LABEL_VALUE_LENGTH): string {
  let out = VALUE_FORBIDDEN.test(value) ? value.replace(VALUE_FORBIDDEN_ALL, '_') : value;
  if (out.length > maxLength) out = out.slice(0, maxLength);
  return out;
}

/** Why a tag value is refused (tags are user config: refuse rather than rewrite), or undefined. */
export function tagValueProblem(value: string): string | undefined {
  if (value.length === 0) return 'must not be empty';
  if (value.length > MAX_LABEL_VALUE_LENGTH) return `must be at most ${MAX_LABEL_VALUE_LENGTH} characters`;
  if (VALUE_FORBIDDEN.test(value)) return 'must not contain "{", "}", ",", "=" or control characters';
  return undefined;
}
