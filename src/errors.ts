/**
 * The plugin's errors. Each has a stable `code` (Fastify style, `FST_...`) that callers can
 * match on; messages are for humans and may change. No error ever carries a credential.
 */

/** Options whose values are secrets: their value is never printed. */
const SECRET_OPTION = /token|password|passwd|secret|credential|authorization|cookie|api[-_]?key|headers/i;

/** Longest value representation put in a message. */
const MAX_VALUE_REPR = 100;

/**
 * A short, single-line, secret-free representation of a user-supplied value for an error message.
 * Strings are quoted (so '' and ' ' are visible); URL userinfo is masked; long values are cut.
 */
export function describeValue(option: string, value: unknown): string {
  if (SECRET_OPTION.test(option)) return "'***'";
  return truncate(escapeInvisible(maskUrlUserinfo(rawRepr(value))), MAX_VALUE_REPR);
}

/**
 * An option name as typed by the user (`headers.<key>` carries a user key): single line,
 * invisible characters escaped, cut.
 */
export function describeOptionName(option: string): string {
  return truncate(escapeInvisible(option), MAX_VALUE_REPR);
}

/** JSON.stringify leaves DEL, C1 controls and the line/paragraph separators raw: escape them. */
function escapeInvisible(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function rawRepr(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
    case 'boolean':
    case 'undefined':
      return String(value);
    case 'bigint':
      return `${value}n`;
    case 'symbol':
    case 'function':
      return `[${typeof value}]`;
    default:
      return objectRepr(value as object | null);
  }
}

function objectRepr(value: object | null): string {
  if (value === null) return 'null';
  try {
    // JSON.stringify can throw (cycles, BigInt) or return undefined (toJSON tricks)
    return JSON.stringify(value) ?? Object.prototype.toString.call(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/** `scheme://user:pass@host` -> `scheme://***@host`, wherever it appears in the text. */
export function maskUrlUserinfo(text: string): string {
  return text.replace(/(\/\/)[^/@\s"']*@/g, '$1***@');
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}...(${text.length} chars)` : text;
}

/** One thing wrong with the options: which option, what was received (secret-free), what is allowed. */
export interface OptionProblem {
  option: string;
  received: string;
  expected: string;
}

/**
 * An option has a value the plugin cannot use. Thrown (or rejected from `ready()`) at registration.
 * One error reports every problem of a registration: `problems` lists them, `option` names the first.
 */
export class ProfilingOptionError extends Error {
  readonly code = 'FST_CONTINUOUS_PROFILING_INVALID_OPTION';
  /** the (first) option's name, or its path like `tags.region` */
  readonly option: string;
  /** every problem found, in the order the options were checked */
  problems: readonly OptionProblem[];

  constructor(option: string, value: unknown, expected: string) {
    const problem = { option, received: describeValue(option, value), expected };
    super(problemText(problem));
    this.name = 'ProfilingOptionError';
    this.option = option;
    this.problems = [problem];
  }

  /** One error for all of them (the error itself when there is one). */
  static combine(errors: readonly ProfilingOptionError[]): ProfilingOptionError {
    if (errors.length === 1) return errors[0];
    const problems = errors.flatMap((error) => error.problems);
    const combined = new ProfilingOptionError(problems[0].option, undefined, problems[0].expected);
    combined.problems = problems;
    // one line, as every message of this plugin (a log line must not be split by option values)
    combined.message = `Invalid options (${problems.length} problems): ${problems.map((p, i) => `(${i + 1}) ${problemText(p)}`).join(' ')}`;
    return combined;
  }
}

function problemText(problem: OptionProblem): string {
  return `Invalid option "${describeOptionName(problem.option)}": got ${problem.received}; expected ${problem.expected}`;
}

/** A second profiler was registered while another one is active in this process. */
export class ProfilerAlreadyActiveError extends Error {
  readonly code = 'FST_CONTINUOUS_PROFILING_ALREADY_ACTIVE';

  constructor(
    message = 'A continuous profiler is already active in this process (V8 allows one per isolate); close it before registering another',
  ) {
    super(message);
    this.name = 'ProfilerAlreadyActiveError';
  }
}


/**
 * The plugin was registered where its hooks cannot reach every route: inside an encapsulated
 * plugin, with routes outside it (src/registration.ts). Thrown at registration (ready() rejects)
 * or from the declaration of the first route outside it.
 */
export class ProfilerRegistrationError extends Error {
  readonly code = 'FST_CONTINUOUS_PROFILING_NOT_ROOT';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProfilerRegistrationError';
  }
}
