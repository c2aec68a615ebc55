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
    cpuThreshold: Type.Optional(opt(Type.Number(), 'an integer from 0 to 1000 (per mille of the CPU available; 0 = always on)')),
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
    // holds functions (authorize): checked by resolvePprofEndpoints, not by the schema
    pprofEndpoints: Type.Optional(opt(Type.Unsafe<PprofEndpointsOptions>(Type.Any()), PPROF_ENDPOINTS_EXPECTED)),
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
  cpuThreshold: number;
  /** all durations in milliseconds */
  checkInterval: number;
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
  /** the /debug/pprof endpoints; undefined = off */
  pprofEndpoints?: ResolvedPprofEndpoints;
}

export const DEFAULTS = {
  cpuThreshold: 700,
  checkInterval: 10_000,
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

export function resolveOptions(raw: unknown, env: Env = process.env): ResolvedOptions {
  const input = checkShape(raw ?? {});
  const fromEnv = (key: keyof typeof ENV_VARIABLES): string | undefined => {
    const explicit = input[key];
    if (explicit !== undefined) return explicit;
    const value = env[ENV_VARIABLES[key]];
    return value === undefined || value === '' ? undefined : value;
  };

  const enabled = input.enabled ?? true;
  const appName = fromEnv('appName');
  const outputDir = input.outputDir;
  const serverAddress = normalizeServerAddress(fromEnv('serverAddress'));

  if (enabled) {
    if (appName === undefined) {
      throw new ProfilingOptionError('appName', undefined, `a Pyroscope application name (or the ${ENV_VARIABLES.appName} environment variable)`);
    }
    if (serverAddress === undefined && outputDir === undefined) {
      throw new ProfilingOptionError(
        'serverAddress',
        undefined,
        `a Pyroscope URL (or the ${ENV_VARIABLES.serverAddress} environment variable), or "outputDir" to write profiles to disk`,
      );
    }
  }
  if (appName !== undefined && (!APP_NAME_PATTERN.test(appName) || appName.length > MAX_APP_NAME_LENGTH)) {
    throw new ProfilingOptionError('appName', appName, `a name of 1 to ${MAX_APP_NAME_LENGTH} letters, digits, "_", ".", "-" and "/"`);
  }
  // eslint-disable-next-line no-control-regex
  if (outputDir !== undefined && (outputDir.trim() === '' || outputDir.length > 4096 || /[\u0000-\u001f]/.test(outputDir))) {
    throw new ProfilingOptionError('outputDir', outputDir, 'a directory path of 1 to 4096 characters without control characters');
  }

  const authToken = headerSafe('authToken', fromEnv('authToken'));
  const basicAuthUser = headerSafe('basicAuthUser', fromEnv('basicAuthUser'), { char: ':', why: 'a user name without ":" (basic auth separates user and password with it)' });
  const basicAuthPassword = headerSafe('basicAuthPassword', fromEnv('basicAuthPassword'));
  const tenantID = headerSafe('tenantID', fromEnv('tenantID'));
  if (authToken !== undefined && (basicAuthUser !== undefined || basicAuthPassword !== undefined)) {
    throw new ProfilingOptionError('authToken', authToken, 'either authToken or basicAuthUser/basicAuthPassword, not both');
  }
  if ((basicAuthUser === undefined) !== (basicAuthPassword === undefined)) {
    const missing = basicAuthUser === undefined ? 'basicAuthUser' : 'basicAuthPassword';
    throw new ProfilingOptionError(missing, undefined, 'basicAuthUser and basicAuthPassword to be given together');
  }
  const headers = { ...(input.headers ?? {}) };
  for (const name of Object.keys(headers)) {
    if (!HEADER_NAME.test(name)) throw new ProfilingOptionError(`headers.${name}`, name, 'a valid HTTP header name');
    if (/[\r\n\0]/.test(headers[name])) {
      throw new ProfilingOptionError(`headers.${name}`, headers[name], 'a header value without line breaks');
    }
  }

  const allowInsecureAuth = input.allowInsecureAuth ?? false;
  const hasCredentials =
    authToken !== undefined || basicAuthUser !== undefined || Object.keys(headers).some((name) => name.toLowerCase() === 'authorization');
  if (serverAddress !== undefined && !allowInsecureAuth) {
    const problem = insecureAuthProblem(serverAddress, hasCredentials);
    if (problem !== undefined) {
      throw new ProfilingOptionError('serverAddress', serverAddress, `${problem}; use https, or set allowInsecureAuth: true`);
    }
  }

  const labels = { ...DEFAULTS.labels, ...(input.labels ?? {}) };
  const builtinLabels = (labels.route ? 1 : 0) + (labels.method ? 1 : 0);
  const tags = { ...(input.tags ?? {}) };
  const maxTags = MAX_SERIES_LABELS - SERVER_SERIES_LABELS - builtinLabels - RESERVED_USER_LABELS;
  const tagNames = Object.keys(tags);
  if (tagNames.length > maxTags) {
    throw new ProfilingOptionError(
      'tags',
      `${tagNames.length} tags`,
      `at most ${maxTags} tags: Pyroscope keeps ${MAX_SERIES_LABELS} labels per series, ${SERVER_SERIES_LABELS} are its own, ` +
        `${builtinLabels} are this plugin's route/method labels and ${RESERVED_USER_LABELS} are kept for route and withLabels labels`,
    );
  }
  for (const name of tagNames) {
    const nameProblem = labelNameProblem(name);
    if (nameProblem) throw new ProfilingOptionError('tags', name, `tag names that are valid Pyroscope label names: the name ${nameProblem}`);
    if (labels.route && name === 'route') throw new ProfilingOptionError('tags', name, 'a tag name other than "route", which the plugin sets per request');
    if (labels.method && name === 'method') throw new ProfilingOptionError('tags', name, 'a tag name other than "method", which the plugin sets per request');
    const valueProblem = tagValueProblem(tags[name]);
    if (valueProblem) throw new ProfilingOptionError(`tags.${name}`, tags[name], `a tag value that ${valueProblem}`);
  }

  const cpuThreshold = integerIn('cpuThreshold', input.cpuThreshold ?? DEFAULTS.cpuThreshold, 0, 1000);
  const checkInterval = durationIn('checkInterval', input.checkInterval ?? DEFAULTS.checkInterval, 100, 24 * 3_600_000);
  const profilingDuration = durationIn('profilingDuration', input.profilingDuration ?? DEFAULTS.profilingDuration, 1000, 7 * 24 * 3_600_000);
  const uploadRate = durationIn('uploadRate', input.uploadRate ?? DEFAULTS.uploadRate, 1000, 300_000);
  const flushTimeout = durationIn('flushTimeout', input.flushTimeout ?? DEFAULTS.flushTimeout, 0, 60_000);
  const uploadTimeout = durationIn('uploadTimeout', input.uploadTimeout ?? DEFAULTS.uploadTimeout, 100, 300_000);
  if (uploadRate > profilingDuration) {
    throw new ProfilingOptionError('uploadRate', input.uploadRate ?? DEFAULTS.uploadRate, `a duration no longer than profilingDuration (${profilingDuration} ms)`);
  }

  const profileTypes = { ...DEFAULTS.profileTypes, ...(input.profileTypes ?? {}) };
  if (!profileTypes.cpu && !profileTypes.wall && !profileTypes.heap) {
    throw new ProfilingOptionError('profileTypes', input.profileTypes, 'at least one of "cpu", "wall" and "heap" set to true');
  }

  return {
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
    checkInterval,
    profilingDuration,
    uploadRate,
    flushTimeout,
    uploadTimeout,
    profileTypes,
    sampleRate: integerIn('sampleRate', input.sampleRate ?? DEFAULTS.sampleRate, 1, 1000),
    heapSamplingInterval: integerIn('heapSamplingInterval', input.heapSamplingInterval ?? DEFAULTS.heapSamplingInterval, 1024, 64 * 1024 * 1024),
    labels,
    maxLabelValues: integerIn('maxLabelValues', input.maxLabelValues ?? DEFAULTS.maxLabelValues, 1, 100_000),
    maxLabelsPerSample: MAX_SERIES_LABELS - SERVER_SERIES_LABELS - tagNames.length,
    outputDir,
    maxOutputFiles: integerIn('maxOutputFiles', input.maxOutputFiles ?? DEFAULTS.maxOutputFiles, 1, 1_000_000),
    maxOutputBytes: integerIn('maxOutputBytes', input.maxOutputBytes ?? DEFAULTS.maxOutputBytes, 1024 * 1024, Number.MAX_SAFE_INTEGER),
    maxUploadRetries: integerIn('maxUploadRetries', input.maxUploadRetries ?? DEFAULTS.maxUploadRetries, 0, 10),
    maxPendingUploads: integerIn('maxPendingUploads', input.maxPendingUploads ?? DEFAULTS.maxPendingUploads, 1, 10_000),
    maxPendingBytes: integerIn('maxPendingBytes', input.maxPendingBytes ?? DEFAULTS.maxPendingBytes, 65_536, Number.MAX_SAFE_INTEGER),
    allowInsecureAuth,
    pprofEndpoints: resolvePprofEndpoints(input.pprofEndpoints),
  };
}

/** Structure and types, by the schema; unknown keys (including `__proto__`) are refused. */
function checkShape(raw: unknown): ProfilingOptions {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ProfilingOptionError('options', raw, 'an object');
  }
  const known = OptionsSchema.properties as Record<string, TSchema>;
  for (const key of Object.keys(raw)) {
    if (!Object.prototype.hasOwnProperty.call(known, key)) {
      throw new ProfilingOptionError(key, (raw as Record<string, unknown>)[key], `a known option (unknown option "${key}"; known: ${Object.keys(known).join(', ')})`);
    }
  }
  // Fastify hands plugins a copy that may carry `undefined` for omitted keys: treat as absent.
  const cleaned: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) if (value !== undefined) cleaned[key] = value;
  // A Map, Date or class instance passes a structural check as `{}`: it would be silently empty.
  for (const key of OBJECT_OPTIONS) {
    const value = cleaned[key];
    if (value !== undefined && !isPlainObject(value)) {
      throw new ProfilingOptionError(key, value, (known[key] as TSchema & { expected: string }).expected);
    }
  }

  const first = Value.Errors(OptionsSchema, cleaned).First();
  if (first) {
    const key = first.path.split('/')[1] ?? 'options';
    const schema = known[key] as TSchema & { expected?: string };
    const nested = first.path.split('/').slice(2).join('.');
    const option = nested ? `${key}.${nested}` : key;
    const value = nested ? first.value : cleaned[key];
    throw new ProfilingOptionError(option, value, schema?.expected ?? first.message);
  }
  return cleaned as ProfilingOptions;
}

const OBJECT_OPTIONS = ['headers', 'tags', 'profileTypes', 'labels'] as const;

function isPlainObject(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Credentials and tenant go into HTTP headers: a control character would break every upload. */
function headerSafe(option: string, value: string | undefined, extra?: { char: string; why: string }): string | undefined {
  if (value === undefined) return undefined;
  // eslint-disable-next-line no-control-regex
  if (value === '' || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new ProfilingOptionError(option, value, 'a non-empty string without control characters (it is sent in an HTTP header)');
  }
  if (extra && value.includes(extra.char)) throw new ProfilingOptionError(option, value, extra.why);
  return value;
}

function integerIn(option: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ProfilingOptionError(option, value, `an integer from ${min} to ${max}`);
  }
  return value;
}

function durationIn(option: string, value: number | string, minMs: number, maxMs: number): number {
  const ms = parseDuration(value);
  const range = `from ${minMs} ms to ${maxMs} ms`;
  if (ms === undefined) {
    throw new ProfilingOptionError(option, value, `a duration: milliseconds as a number, or a Go duration string such as "500ms", "15s", "2m", "1h30m" (${range})`);
  }
  if (ms < minMs || ms > maxMs) throw new ProfilingOptionError(option, value, `a duration ${range}`);
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
