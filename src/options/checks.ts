/**
 * The pieces every option group is built from: schema fragments (durations, thresholds, string
 * maps, the `expected` annotation an error message quotes), the problem list of one registration,
 * and the value checks (integer ranges, durations, directory paths) that record a problem
 * instead of throwing, so that every option is checked even after one failed.
 */
import { Type, type Static, type TObject, type TProperties, type TSchema } from '@sinclair/typebox';
import { parseDuration } from '../duration';
import { ProfilingOptionError } from '../errors';

/** A duration: milliseconds, or a Go duration string such as '500ms', '15s', '2m', '1h30m'. */
export const Duration = Type.Union([Type.Number(), Type.String()]);
export const StringMap = Type.Record(Type.String(), Type.String());
/** A trigger threshold in per mille, or false: this trigger never starts a session. */
export const Threshold = Type.Union([Type.Number(), Type.Literal(false)]);

/** `expected` is our own annotation: the text an error message gives for a bad value. */
export function opt<T extends TSchema>(schema: T, expected: string): T {
  return { ...schema, expected } as T;
}

/** What a user gave for one group of options (after the shape check). */
export type Given<P extends TProperties> = Static<TObject<P>>;

/** A group's options with its defaults merged in: the defaulted keys (and their fields) are always present. */
export type WithDefaults<G, D> = Omit<G, keyof D> & { [K in keyof D & keyof G]-?: Required<Exclude<G[K], undefined>> };

/**
 * The problems of one registration. Every option is checked even after one failed, so a user
 * fixes them all at once: a failed check records its problem and gives NaN/undefined, which the
 * cross-field rules never mistake for a value (NaN compares false).
 */
export class OptionProblems {
  private readonly errors: ProfilingOptionError[] = [];

  add(option: string, value: unknown, expected: string): void {
    this.errors.push(new ProfilingOptionError(option, value, expected));
  }

  /** Whether a problem was already recorded for this option (or one of its fields). */
  has(option: string): boolean {
    return this.errors.some((error) => error.problems.some((p) => p.option === option || p.option.startsWith(`${option}.`)));
  }

  /** Runs a check that throws ProfilingOptionError; its error is recorded and `fallback` returned. */
  attempt<T>(check: () => T, fallback: T): T {
    try {
      return check();
    } catch (error) {
      if (!(error instanceof ProfilingOptionError)) throw error;
      this.errors.push(error);
      return fallback;
    }
  }

  throwIfAny(): void {
    if (this.errors.length > 0) throw ProfilingOptionError.combine(this.errors);
  }
}

export function integerIn(problems: OptionProblems, option: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    problems.add(option, value, `an integer from ${min} to ${max}`);
    return NaN;
  }
  return value;
}

/** A number option that also takes `false` (a trigger that is off, a bound that is not set). */
export function integerOrOff(problems: OptionProblems, option: string, value: number | false, min: number, max: number, off: string): number | false {
  if (value === false) return false;
  if (!Number.isInteger(value) || value < min || value > max) {
    problems.add(option, value, `an integer from ${min} to ${max}, or false (${off})`);
    return NaN;
  }
  return value;
}

export function durationIn(problems: OptionProblems, option: string, value: number | string, minMs: number, maxMs: number): number {
  const ms = parseDuration(value);
  const range = `from ${minMs} ms to ${maxMs} ms`;
  if (ms === undefined) {
    problems.add(option, value, `a duration: milliseconds as a number, or a Go duration string such as "500ms", "15s", "2m", "1h30m" (${range})`);
    return NaN;
  }
  if (ms < minMs || ms > maxMs) {
    problems.add(option, value, `a duration ${range}`);
    return NaN;
  }
  return ms;
}

/** A directory path option (outputDir, root); false, with the problem recorded, when it is not one. */
export function isDirectoryPath(problems: OptionProblems, option: string, value: string): boolean {
  // eslint-disable-next-line no-control-regex
  if (value.trim() === '' || value.length > 4096 || /[\u0000-\u001f]/.test(value)) {
    problems.add(option, value, 'a directory path of 1 to 4096 characters without control characters');
    return false;
  }
  return true;
}
