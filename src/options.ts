/**
 * Options: the TypeBox schema (which also gives the public static type), defaults, the
 * PYROSCOPE_* environment variables, Go-style durations, and the cross-field rules.
 *
 * `resolveOptions` either returns a complete, valid `ResolvedOptions` or throws a
 * `ProfilingOptionError` naming the option, the value received and what is allowed.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parseDuration } from './duration';
import { ProfilingOptionError } from './errors';
import { insecureAuthProblem, parseHttpUrl } from './exporters/pyroscope';
import { PPROF_ENDPOINTS_EXPECTED, resolvePprofEndpoints, type PprofEndpointsOptions, type ResolvedPprofEndpoints } from './pull/options';
import {
  APP_NAME_PATTERN,
  MAX_SERIES_LABELS,
  SERVER_SERIES_LABELS,
  labelNameProblem,
  tagValueProblem,
} from './pyroscope-rules';

/** A duration: milliseconds, or a Go duration string such as '500ms', '15s', '2m', '1h30m'. */
const Duration = Type.Union([Type.Number(), Type.String()]);
const StringMap = Type.Record(Type.String(), Type.String());
/** A trigger threshold in per mille, or false: this trigger never starts a session. */
const Threshold = Type.Union([Type.Number(), Type.Literal(false)]);

/** `expected` is our own annotation: the text an error message gives for a bad value. */
function opt<T extends TSchema>(schema: T, expected: string): T {
  return { ...schema, expected } as T;
}

export const OptionsSchema = Type.Object(
  {
    appName: Type.Optional(opt(Type.String(), 'a Pyroscope application name of letters, digits, "_", ".", "-" and "/"')),
    serverAddress: Type.Optional(opt(Type.String(), 'an http:// or https:// URL such as "http://localhost:4040"')),
    authToken: Type.Optional(opt(Type.String(), 'a string (sent as "Authorization: Bearer <token>")')),
    basicAuthUser: Type.Optional(opt(Type.String(), 'a string')),
    basicAuthPassword: Type.Optional(opt(Type.String(), 'a string')),
    tenantID: Type.Optional(opt(Type.String(), 'a string (sent as X-Scope-OrgID)')),
    headers: Type.Optional(opt(StringMap, 'an object of header names to string values')),
    tags: Type.Optional(opt(StringMap, 'an object of tag names to string values')),
    cpuThreshold: Type.Optional(opt(Threshold, 'an integer from 0 to 1000 (per mille of the CPU available; 0 = always on), or false (off)')),
    eventLoopThreshold: Type.Optional(opt(Threshold, 'an integer from 1 to 1000 (per mille event-loop utilization), or false (off, the default)')),
    heapThreshold: Type.Optional(opt(Threshold, "an integer from 1 to 1000 (per mille of V8's heap limit), or false (off, the default)")),
    memoryThreshold: Type.Optional(opt(Threshold, 'an integer from 1 to 1000 (per mille of the memory available: cgroup limit, else total memory), or false (off, the default)')),
    cooldown: Type.Optional(opt(Duration, 'a duration up to 24h, e.g. "10m"; 0 = none')),
    maxSessionsPerHour: Type.Optional(opt(Threshold, 'an integer from 1 to 3600, or false (unbounded, the default)')),
    checkInterval: Type.Optional(opt(Duration, 'a duration of at least 100ms, e.g. 10000 or "10s"')),
    profilingDuration: Type.Optional(opt(Duration, 'a duration of at least 1s, e.g. "2m"')),
    uploadRate: Type.Optional(opt(Duration, 'a duration from 1s to 5m, e.g. "15s"')),
    profileTypes: Type.Optional(
      opt(
        Type.Object(
          {
            cpu: Type.Optional(Type.Boolean()),
            wall: Type.Optional(Type.Boolean()),
            heap: Type.Optional(Type.Boolean()),
          },
          { additionalProperties: false },
        ),
        'an object with boolean "cpu", "wall" and "heap"',
      ),
    ),
    sampleRate: Type.Optional(opt(Type.Number(), 'an integer from 1 to 1000 (Hz)')),
    heapSamplingInterval: Type.Optional(opt(Type.Number(), 'an integer number of bytes from 1024 to 67108864')),
    flushTimeout: Type.Optional(opt(Duration, 'a duration up to 1m, e.g. "5s"')),
    uploadTimeout: Type.Optional(opt(Duration, 'a duration from 100ms to 5m, e.g. "10s"')),
    enabled: Type.Optional(opt(Type.Boolean(), 'true or false')),
    labels: Type.Optional(
      opt(
        Type.Object(
          { route: Type.Optional(Type.Boolean()), method: Type.Optional(Type.Boolean()) },
          { additionalProperties: false },
        ),
        'an object with boolean "route" and "method"',
      ),
    ),
    maxLabelValues: Type.Optional(opt(Type.Number(), 'an integer from 1 to 100000')),
    outputDir: Type.Optional(opt(Type.String(), 'a directory path')),
    maxOutputFiles: Type.Optional(opt(Type.Number(), 'an integer from 1 to 1000000')),
    maxOutputBytes: Type.Optional(opt(Type.Number(), 'an integer number of bytes of at least 1048576')),
    maxUploadRetries: Type.Optional(opt(Type.Number(), 'an integer from 0 to 10')),
    maxPendingUploads: Type.Optional(opt(Type.Number(), 'an integer from 1 to 10000')),
    maxPendingBytes: Type.Optional(opt(Type.Number(), 'an integer number of bytes of at least 65536')),
    allowInsecureAuth: Type.Optional(opt(Type.Boolean(), 'true or false')),
    sourceMaps: Type.Optional(opt(Type.Boolean(), 'true or false')),
    root: Type.Optional(opt(Type.String(), 'an application root directory path')),
    absolutePaths: Type.Optional(opt(Type.Boolean(), 'true or false')),
    // holds functions (authorize): checked by resolvePprofEndpoints, not by the schema
    pprofEndpoints: Type.Optional(opt(Type.Unsafe<PprofEndpointsOptions>(Type.Any()), PPROF_ENDPOINTS_EXPECTED)),
    spanProfiles: Type.Optional(opt(Type.Boolean(), 'true or false')),
  },
  { additionalProperties: false },
);

/** The options a user passes to `app.register(profilingPlugin, options)`. */
export type ProfilingOptions = Static<typeof OptionsSchema>;

export interface ResolvedOptions {
  enabled: boolean;
  appName: string;
  serverAddress?: string;
  authToken?: string;
  basicAuthUser?: string;
  basicAuthPassword?: string;
  tenantID?: string;
  headers: Record<string, string>;
  tags: Record<string, string>;
  /** per mille, or false (off); 0 = continuous */
  cpuThreshold: number | false;
  eventLoopThreshold: number | false;
  heapThreshold: number | false;
  memoryThreshold: number | false;
  /** all durations in milliseconds */
  checkInterval: number;
  /** after an automatically started session, before a trigger may start the next */
  cooldown: number;
  /** automatically started sessions in any 60 minutes; false = unbounded */
  maxSessionsPerHour: number | false;
  profilingDuration: number;
  uploadRate: number;
  flushTimeout: number;
  uploadTimeout: number;
  profileTypes: { cpu: boolean; wall: boolean; heap: boolean };
  sampleRate: number;
  heapSamplingInterval: number;
  labels: { route: boolean; method: boolean };
  maxLabelValues: number;
  /** label keys one sample may carry, after tags and Pyroscope's own series labels */
  maxLabelsPerSample: number;
  outputDir?: string;
  maxOutputFiles: number;
  maxOutputBytes: number;
  maxUploadRetries: number;
  maxPendingUploads: number;
  maxPendingBytes: number;
  allowInsecureAuth: boolean;
  /** frames mapped through their scripts' source maps */
  sourceMaps: boolean;
  /** file names are sent relative to this directory (undefined: found from the entry script) */
  root?: string;
  /** file names are sent as they are */
  absolutePaths: boolean;
  /** the /debug/pprof endpoints; undefined = off */
  pprofEndpoints?: ResolvedPprofEndpoints;
  /**
   * OpenTelemetry span profiles: undefined = on when @opentelemetry/api loads and a tracer
   * provider is registered; true = the same, warning once when they are absent; false = off.
   */
  spanProfiles?: boolean;
}

export const DEFAULTS = {
  cpuThreshold: 700,
  eventLoopThreshold: false,
  heapThreshold: false,
  memoryThreshold: false,
  checkInterval: 10_000,
  cooldown: 0,
  maxSessionsPerHour: false,
  profilingDuration: 120_000,
  uploadRate: 15_000,
  flushTimeout: 5_000,
  uploadTimeout: 10_000,
  profileTypes: { cpu: true, wall: false, heap: true },
  sampleRate: 100,
  heapSamplingInterval: 524_288,
  labels: { route: true, method: true },
  maxLabelValues: 1000,
  maxOutputFiles: 200,
  maxOutputBytes: 100 * 1024 * 1024,
  maxUploadRetries: 3,
  maxPendingUploads: 50,
  maxPendingBytes: 20 * 1024 * 1024,
  sourceMaps: true,
  absolutePaths: false,
} as const;

/** Environment variables the official Pyroscope SDKs read, and the option each fills. */
export const ENV_VARIABLES = {
  appName: 'PYROSCOPE_APPLICATION_NAME',
  serverAddress: 'PYROSCOPE_SERVER_ADDRESS',
  authToken: 'PYROSCOPE_AUTH_TOKEN',
  basicAuthUser: 'PYROSCOPE_BASIC_AUTH_USER',
  basicAuthPassword: 'PYROSCOPE_BASIC_AUTH_PASSWORD',
  tenantID: 'PYROSCOPE_TENANT_ID',
} as const;

/**
 * Label keys the plugin itself may put on a sample (route, method) are reserved in the
 * series budget, and so is room for a few user labels (route config, withLabels).
 */
const RESERVED_USER_LABELS = 4;

/** Pyroscope stores the app name as the `service_name` label; keep it well inside the label value limit. */
const MAX_APP_NAME_LENGTH = 512;

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

type Env = Readonly<Record<string, string | undefined>>;

/**
 * The problems of one registration. Every option is checked even after one failed, so a user
 * fixes them all at once: a failed check records its problem and gives NaN/undefined, which the
 * cross-field rules below never mistake for a value (NaN compares false).
 */
class OptionProblems {
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

export function resolveOptions(raw: unknown, env: Env = process.env): ResolvedOptions {
  const problems = new OptionProblems();
  const input = checkShape(raw ?? {}, problems);
  const fromEnv = (key: keyof typeof ENV_VARIABLES): string | undefined => {
    const explicit = input[key];
    if (explicit !== undefined) return explicit;
    const value = env[ENV_VARIABLES[key]];
    return value === undefined || value === '' ? undefined : value;
  };

  const enabled = input.enabled ?? true;
  const appName = fromEnv('appName');
  const outputDir = input.outputDir;
  const serverAddress = problems.attempt(() => normalizeServerAddress(fromEnv('serverAddress')), undefined);

  if (enabled) {
    if (appName === undefined && !problems.has('appName')) {
      problems.add('appName', undefined, `a Pyroscope application name (or the ${ENV_VARIABLES.appName} environment variable)`);
    }
    if (fromEnv('serverAddress') === undefined && outputDir === undefined && !problems.has('serverAddress') && !problems.has('outputDir')) {
      problems.add(
        'serverAddress',
        undefined,
        `a Pyroscope URL (or the ${ENV_VARIABLES.serverAddress} environment variable), or "outputDir" to write profiles to disk`,
      );
    }
  }
  if (appName !== undefined && (!APP_NAME_PATTERN.test(appName) || appName.length > MAX_APP_NAME_LENGTH)) {
    problems.add('appName', appName, `a name of 1 to ${MAX_APP_NAME_LENGTH} letters, digits, "_", ".", "-" and "/"`);
  }
  // eslint-disable-next-line no-control-regex
  if (outputDir !== undefined && (outputDir.trim() === '' || outputDir.length > 4096 || /[\u0000-\u001f]/.test(outputDir))) {
    problems.add('outputDir', outputDir, 'a directory path of 1 to 4096 characters without control characters');
  }

  const authToken = headerSafe(problems, 'authToken', fromEnv('authToken'));
  const basicAuthUser = headerSafe(problems, 'basicAuthUser', fromEnv('basicAuthUser'), { char: ':', why: 'a user name without ":" (basic auth separates user and password with it)' });
  const basicAuthPassword = headerSafe(problems, 'basicAuthPassword', fromEnv('basicAuthPassword'));
  const tenantID = headerSafe(problems, 'tenantID', fromEnv('tenantID'));
  if (authToken !== undefined && (basicAuthUser !== undefined || basicAuthPassword !== undefined)) {
    problems.add('authToken', authToken, 'either authToken or basicAuthUser/basicAuthPassword, not both');
  }
  const basicAuthGiven = [fromEnv('basicAuthUser'), fromEnv('basicAuthPassword')].map((v) => v !== undefined);
  if (basicAuthGiven[0] !== basicAuthGiven[1] && !problems.has('basicAuthUser') && !problems.has('basicAuthPassword')) {
    const missing = basicAuthGiven[0] ? 'basicAuthPassword' : 'basicAuthUser';
    problems.add(missing, undefined, 'basicAuthUser and basicAuthPassword to be given together');
  }
  const headers = { ...(input.headers ?? {}) };
  for (const name of Object.keys(headers)) {
    if (!HEADER_NAME.test(name)) problems.add(`headers.${name}`, name, 'a valid HTTP header name');
    else if (/[\r\n\0]/.test(headers[name])) problems.add(`headers.${name}`, headers[name], 'a header value without line breaks');
  }

  const allowInsecureAuth = input.allowInsecureAuth ?? false;
  const hasCredentials =
    authToken !== undefined || basicAuthUser !== undefined || Object.keys(headers).some((name) => name.toLowerCase() === 'authorization');
  if (serverAddress !== undefined && !allowInsecureAuth) {
    const problem = insecureAuthProblem(serverAddress, hasCredentials);
    if (problem !== undefined) problems.add('serverAddress', serverAddress, `${problem}; use https, or set allowInsecureAuth: true`);
  }

  const labels = { ...DEFAULTS.labels, ...(input.labels ?? {}) };
  const builtinLabels = (labels.route ? 1 : 0) + (labels.method ? 1 : 0);
  const tags = { ...(input.tags ?? {}) };
  const maxTags = MAX_SERIES_LABELS - SERVER_SERIES_LABELS - builtinLabels - RESERVED_USER_LABELS;
  const tagNames = Object.keys(tags);
  if (tagNames.length > maxTags) {
    problems.add(
      'tags',
      `${tagNames.length} tags`,
      `at most ${maxTags} tags: Pyroscope keeps ${MAX_SERIES_LABELS} labels per series, ${SERVER_SERIES_LABELS} are its own, ` +
        `${builtinLabels} are this plugin's route/method labels and ${RESERVED_USER_LABELS} are kept for route and withLabels labels`,
    );
  }
  for (const name of tagNames) {
    const nameProblem = labelNameProblem(name);
    const valueProblem = tagValueProblem(tags[name]);
    if (nameProblem) problems.add('tags', name, `tag names that are valid Pyroscope label names: the name ${nameProblem}`);
    else if (labels.route && name === 'route') problems.add('tags', name, 'a tag name other than "route", which the plugin sets per request');
    else if (labels.method && name === 'method') problems.add('tags', name, 'a tag name other than "method", which the plugin sets per request');
    else if (valueProblem) problems.add(`tags.${name}`, tags[name], `a tag value that ${valueProblem}`);
  }

  const cpuThreshold = integerOrOff(problems, 'cpuThreshold', input.cpuThreshold ?? DEFAULTS.cpuThreshold, 0, 1000, 'off');
  const eventLoopThreshold = integerOrOff(problems, 'eventLoopThreshold', input.eventLoopThreshold ?? DEFAULTS.eventLoopThreshold, 1, 1000, 'off');
  const heapThreshold = integerOrOff(problems, 'heapThreshold', input.heapThreshold ?? DEFAULTS.heapThreshold, 1, 1000, 'off');
  const memoryThreshold = integerOrOff(problems, 'memoryThreshold', input.memoryThreshold ?? DEFAULTS.memoryThreshold, 1, 1000, 'off');
  const maxSessionsPerHour = integerOrOff(problems, 'maxSessionsPerHour', input.maxSessionsPerHour ?? DEFAULTS.maxSessionsPerHour, 1, 3600, 'unbounded');
  const checkInterval = durationIn(problems, 'checkInterval', input.checkInterval ?? DEFAULTS.checkInterval, 100, 24 * 3_600_000);
  const cooldown = durationIn(problems, 'cooldown', input.cooldown ?? DEFAULTS.cooldown, 0, 24 * 3_600_000);
  const profilingDuration = durationIn(problems, 'profilingDuration', input.profilingDuration ?? DEFAULTS.profilingDuration, 1000, 7 * 24 * 3_600_000);
  const uploadRate = durationIn(problems, 'uploadRate', input.uploadRate ?? DEFAULTS.uploadRate, 1000, 300_000);
  const flushTimeout = durationIn(problems, 'flushTimeout', input.flushTimeout ?? DEFAULTS.flushTimeout, 0, 60_000);
  const uploadTimeout = durationIn(problems, 'uploadTimeout', input.uploadTimeout ?? DEFAULTS.uploadTimeout, 100, 300_000);
  if (uploadRate > profilingDuration) {
    problems.add('uploadRate', input.uploadRate ?? DEFAULTS.uploadRate, `a duration no longer than profilingDuration (${profilingDuration} ms)`);
  }

  const root = input.root;
  // eslint-disable-next-line no-control-regex
  if (root !== undefined && (root.trim() === '' || root.length > 4096 || /[\u0000-\u001f]/.test(root))) {
    problems.add('root', root, 'a directory path of 1 to 4096 characters without control characters');
  } else if (root !== undefined && input.absolutePaths === true) {
    problems.add('root', root, 'either root (file names relative to it) or absolutePaths: true (file names unchanged), not both');
  }

  const profileTypes = { ...DEFAULTS.profileTypes, ...(input.profileTypes ?? {}) };
  if (!profileTypes.cpu && !profileTypes.wall && !profileTypes.heap) {
    problems.add('profileTypes', input.profileTypes, 'at least one of "cpu", "wall" and "heap" set to true');
  }

  const resolved: ResolvedOptions = {
    enabled,
    appName: appName ?? '',
    serverAddress,
    authToken,
    basicAuthUser,
    basicAuthPassword,
    tenantID,
    headers,
    tags,
    cpuThreshold,
    eventLoopThreshold,
    heapThreshold,
    memoryThreshold,
    checkInterval,
    cooldown,
    maxSessionsPerHour,
    profilingDuration,
    uploadRate,
    flushTimeout,
    uploadTimeout,
    profileTypes,
    sampleRate: integerIn(problems, 'sampleRate', input.sampleRate ?? DEFAULTS.sampleRate, 1, 1000),
    heapSamplingInterval: integerIn(problems, 'heapSamplingInterval', input.heapSamplingInterval ?? DEFAULTS.heapSamplingInterval, 1024, 64 * 1024 * 1024),
    labels,
    maxLabelValues: integerIn(problems, 'maxLabelValues', input.maxLabelValues ?? DEFAULTS.maxLabelValues, 1, 100_000),
    // span_name is a series label too when span profiles may be on (span_id is not: see cardinality.ts)
    maxLabelsPerSample: MAX_SERIES_LABELS - SERVER_SERIES_LABELS - tagNames.length - (input.spanProfiles === false ? 0 : 1),
    outputDir,
    maxOutputFiles: integerIn(problems, 'maxOutputFiles', input.maxOutputFiles ?? DEFAULTS.maxOutputFiles, 1, 1_000_000),
    maxOutputBytes: integerIn(problems, 'maxOutputBytes', input.maxOutputBytes ?? DEFAULTS.maxOutputBytes, 1024 * 1024, Number.MAX_SAFE_INTEGER),
    maxUploadRetries: integerIn(problems, 'maxUploadRetries', input.maxUploadRetries ?? DEFAULTS.maxUploadRetries, 0, 10),
    maxPendingUploads: integerIn(problems, 'maxPendingUploads', input.maxPendingUploads ?? DEFAULTS.maxPendingUploads, 1, 10_000),
    maxPendingBytes: integerIn(problems, 'maxPendingBytes', input.maxPendingBytes ?? DEFAULTS.maxPendingBytes, 65_536, Number.MAX_SAFE_INTEGER),
    allowInsecureAuth,
    sourceMaps: input.sourceMaps ?? DEFAULTS.sourceMaps,
    root,
    absolutePaths: input.absolutePaths ?? DEFAULTS.absolutePaths,
    pprofEndpoints: problems.attempt(() => resolvePprofEndpoints(input.pprofEndpoints), undefined),
    spanProfiles: input.spanProfiles,
  };
  problems.throwIfAny();
  return resolved;
}

/**
 * Structure and types, by the schema; unknown keys (including `__proto__`) are refused. Every
 * problem is recorded (the first per option); an option with one is left out, so the value
 * checks that follow see it as absent instead of reporting it twice.
 */
function checkShape(raw: unknown, problems: OptionProblems): ProfilingOptions {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    problems.add('options', raw, 'an object');
    problems.throwIfAny();
  }
  const known = OptionsSchema.properties as Record<string, TSchema>;
  // Fastify hands plugins a copy that may carry `undefined` for omitted keys: treat as absent.
  const cleaned: Record<string, unknown> = {};
  for (const key of Object.keys(raw as object)) {
    const value = (raw as Record<string, unknown>)[key];
    if (!Object.prototype.hasOwnProperty.call(known, key)) {
      problems.add(key, value, `a known option (unknown option "${key}"; known: ${Object.keys(known).join(', ')})`);
    } else if (value !== undefined) {
      cleaned[key] = value;
    }
  }
  // A Map, Date or class instance passes a structural check as `{}`: it would be silently empty.
  for (const key of OBJECT_OPTIONS) {
    const value = cleaned[key];
    if (value !== undefined && !isPlainObject(value)) {
      problems.add(key, value, (known[key] as TSchema & { expected: string }).expected);
      delete cleaned[key];
    }
  }

  const reported = new Set<string>();
  for (const error of Value.Errors(OptionsSchema, cleaned)) {
    const key = error.path.split('/')[1] ?? 'options';
    if (reported.has(key)) continue;
    reported.add(key);
    const schema = known[key] as TSchema & { expected?: string };
    const nested = error.path.split('/').slice(2).join('.');
    const option = nested ? `${key}.${nested}` : key;
    const value = nested ? error.value : cleaned[key];
    problems.add(option, value, schema?.expected ?? error.message);
  }
  for (const key of reported) delete cleaned[key];
  return cleaned as ProfilingOptions;
}

const OBJECT_OPTIONS = ['headers', 'tags', 'profileTypes', 'labels'] as const;

function isPlainObject(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Credentials and tenant go into HTTP headers: a control character would break every upload. */
function headerSafe(problems: OptionProblems, option: string, value: string | undefined, extra?: { char: string; why: string }): string | undefined {
  if (value === undefined) return undefined;
  // eslint-disable-next-line no-control-regex
  if (value === '' || /[\u0000-\u001f\u007f]/.test(value)) {
    problems.add(option, value, 'a non-empty string without control characters (it is sent in an HTTP header)');
    return undefined;
  }
  if (extra && value.includes(extra.char)) {
    problems.add(option, value, extra.why);
    return undefined;
  }
  return value;
}

function integerIn(problems: OptionProblems, option: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    problems.add(option, value, `an integer from ${min} to ${max}`);
    return NaN;
  }
  return value;
}

/** A number option that also takes `false` (a trigger that is off, a bound that is not set). */
function integerOrOff(problems: OptionProblems, option: string, value: number | false, min: number, max: number, off: string): number | false {
  if (value === false) return false;
  if (!Number.isInteger(value) || value < min || value > max) {
    problems.add(option, value, `an integer from ${min} to ${max}, or false (${off})`);
    return NaN;
  }
  return value;
}

function durationIn(problems: OptionProblems, option: string, value: number | string, minMs: number, maxMs: number): number {
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

function normalizeServerAddress(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  const url = parseHttpUrl(address);
  if (url.username || url.password) {
    throw new ProfilingOptionError('serverAddress', `${url.protocol}//***@${url.host}`, 'a URL without credentials: use basicAuthUser/basicAuthPassword or authToken');
  }
  if (url.search || url.hash) {
    throw new ProfilingOptionError('serverAddress', address, 'a base URL without query string or fragment');
  }
  return url.href.replace(/\/+$/, '');
}
