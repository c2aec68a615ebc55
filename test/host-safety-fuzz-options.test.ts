/**
 * Host safety, bad input: every option fed hostile and random values through the real
 * registration path (`app.register(plugin, opts); await app.ready()`).
 *
 * For every value, whatever it is:
 * - the outcome is either a working registration or a ProfilingOptionError
 *   (code FST_CONTINUOUS_PROFILING_INVALID_OPTION) whose message starts with
 *   `Invalid option "<name>"`, names the option fuzzed (or its partner, e.g. uploadRate for
 *   profilingDuration) and is one bounded line: never a TypeError, another error, a crash or a hang;
 * - nothing is left half-started: afterwards the engine is free and the process-wide slot too
 *   (the next case registers again in the same process).
 * For values that are clearly invalid for the option's kind (a coarse oracle, see mustReject),
 * the registration must be refused.
 *
 * Seeded (mulberry32): FCP_FUZZ_SEED (default 20251126) and FCP_FUZZ_CASES random values per
 * option on top of the fixed hostile pool (default 10). A failure prints the seed and the case.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import profilingPlugin from '../src';
import { CpuUsageMeter } from '../src/cpu-usage';
import { ProfilingOptionError, describeOptionName } from '../src/errors';
import { OptionsSchema } from '../src/options';
import { refusedUrl } from './helpers/ingest-stand-in';
import { heapSamplerRunning, seededRandom, sleep, timeProfilerRunning } from './fixtures/host-safety-helpers';

const SEED = Number(process.env.FCP_FUZZ_SEED ?? 20251126);
const RANDOM_CASES = Number(process.env.FCP_FUZZ_CASES ?? 10);
const READY_TIMEOUT_MS = 5_000;
const MAX_MESSAGE_LENGTH = 2_000;

// --- the options and what kind of value each takes --------------------------------------------

type OptionKind = 'string' | 'tag' | 'credential' | 'url' | 'path' | 'map' | 'number' | 'threshold' | 'duration' | 'boolean' | 'flags' | 'endpoints';

const KIND: Record<string, OptionKind> = {
  appName: 'string',
  serverAddress: 'url',
  authToken: 'credential',
  basicAuthUser: 'credential',
  basicAuthPassword: 'credential',
  tenantID: 'credential',
  headers: 'map',
  tags: 'map',
  instance: 'tag',
  cpuThreshold: 'threshold',
  eventLoopThreshold: 'threshold',
  heapThreshold: 'threshold',
  memoryThreshold: 'threshold',
  checkInterval: 'duration',
  cooldown: 'duration',
  maxSessionsPerHour: 'threshold',
  profilingDuration: 'duration',
  uploadRate: 'duration',
  profileTypes: 'flags',
  sampleRate: 'number',
  heapSamplingInterval: 'number',
  flushTimeout: 'duration',
  uploadTimeout: 'duration',
  enabled: 'boolean',
  labels: 'flags',
  maxLabelValues: 'number',
  outputDir: 'path',
  maxOutputFiles: 'number',
  maxOutputBytes: 'number',
  maxUploadRetries: 'number',
  maxPendingUploads: 'number',
  maxPendingBytes: 'number',
  allowInsecureAuth: 'boolean',
  sourceMaps: 'boolean',
  root: 'path',
  absolutePaths: 'boolean',
  pprofEndpoints: 'endpoints',
  spanProfiles: 'boolean',
  maxWorkers: 'number',
};

/** Options a refusal of option X may name instead of X (cross-field rules). */
const PARTNERS: Record<string, string[]> = {
  profilingDuration: ['uploadRate'],
  basicAuthUser: ['basicAuthPassword', 'authToken'],
  basicAuthPassword: ['basicAuthUser', 'authToken'],
};

/** Registrations that never profile by themselves and close fast. */
function baseOptions(option: string, serverAddress: string): Record<string, unknown> {
  const base: Record<string, unknown> = {
    appName: 'fuzz',
    serverAddress,
    cpuThreshold: 1000,
    checkInterval: '1h',
    profilingDuration: '1h',
    uploadRate: '5m',
    flushTimeout: '100ms',
    uploadTimeout: '100ms',
  };
  // the partner of a basic auth option, so the value itself is what is judged
  if (option === 'basicAuthUser') base.basicAuthPassword = 'fuzz-password';
  if (option === 'basicAuthPassword') base.basicAuthUser = 'fuzz-user';
  return base;
}

// --- hostile values -----------------------------------------------------------------------------

const TEN_KB = 'a'.repeat(10 * 1024);

function cyclic(): Record<string, unknown> {
  const o: Record<string, unknown> = { a: 1 };
  o.self = o;
  return o;
}

/** Values every option gets. Objects are built fresh per use (no case can mutate the next one's). */
function hostilePool(): Array<[string, unknown]> {
  return [
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['-Infinity', -Infinity],
    ['-1', -1],
    ['-0.5', -0.5],
    ['0.5', 0.5],
    ['1e308', 1e308],
    ['2**53 + 2', 2 ** 53 + 2],
    ['-2**31', -(2 ** 31)],
    ['empty string', ''],
    ['space', ' '],
    ['braces', '{}'],
    ['equals', 'a=b'],
    ['colon', 'user:name'],
    ['pyroscope syntax', 'app{k=v,k2=v2}'],
    ['newline', 'x\ny'],
    ['CRLF header injection', 'x\r\nX-Injected: 1'],
    ['NUL', 'a\u0000b'],
    ['10 kB string', TEN_KB],
    ['format string', '%s%n%d'],
    ['path traversal', '../../etc/passwd'],
    ['"__proto__" string', '__proto__'],
    ['negative duration', '-1s'],
    ['huge duration', `${'9'.repeat(400)}h`],
    ['Go duration with spaces', '1h 30m'],
    ['lone surrogate', '\ud800'],
    ['emoji', '\u{1F4A5}'],
    ['true', true],
    ['false', false],
    ['null', null],
    ['empty array', []],
    ['array of junk', [1, 'a', null, {}]],
    ['empty object', {}],
    ['JSON __proto__ object', JSON.parse('{"__proto__":{"polluted":"yes"}}')],
    ['JSON constructor.prototype', JSON.parse('{"constructor":{"prototype":{"polluted":"yes"}}}')],
    ['JSON prototype key', JSON.parse('{"prototype":{"polluted":"yes"}}')],
    ['nested junk', { a: { b: { c: [{ d: NaN, e: () => 1 }] } } }],
    ['null-prototype object', Object.create(null)],
    ['cyclic object', cyclic()],
    ['Date', new Date(0)],
    ['RegExp', /x/g],
    ['Map', new Map([['a', 'b']])],
    ['Buffer', Buffer.from('secret')],
    ['function', () => 1],
    ['class', class Junk {}],
    ['symbol', Symbol('junk')],
    ['Symbol.iterator', Symbol.iterator],
    ['bigint', 10n],
    ['throwing toJSON', { toJSON: () => { throw new Error('toJSON junk'); } }],
    ['throwing toString', { toString: () => { throw new Error('toString junk'); } }],
  ];
}

/** Map-shaped junk for headers/tags, flag-shaped junk for profileTypes/labels. */
function shapedPool(kind: OptionKind): Array<[string, unknown]> {
  if (kind === 'endpoints') {
    return [
      ['listener on any free loopback port', { listen: { port: 0 } }],
      ['listener on 0.0.0.0 without authorize', { listen: { port: 0, host: '0.0.0.0' } }],
      ['routes without authorize', { prefix: '/debug/pprof' }],
      ['routes with authorize', { prefix: '/debug/pprof', authorize: () => true }],
      ['both forms', { listen: { port: 0 }, prefix: '/x', authorize: () => true }],
      ['port as a string', { listen: { port: '6060' } }],
      ['prefix with a newline', { prefix: '/x\ny', authorize: () => true }],
      ['maxSeconds 1e9', { listen: { port: 0 }, maxSeconds: 1e9 }],
    ];
  }
  if (kind === 'map') {
    return [
      ['key "__proto__" (JSON)', JSON.parse('{"__proto__":"x"}')],
      ['key "constructor"', { constructor: 'x' }],
      ['key with newline', { 'x\ny': 'v' }],
      ['10 kB key', { [TEN_KB]: 'v' }],
      ['value with newline', { k: 'x\r\ny' }],
      ['value with braces', { k: '{a=b}' }],
      ['10 kB value', { k: TEN_KB }],
      ['number value', { k: 1 }],
      ['nested object value', { k: { nested: 'x' } }],
      ['empty key', { '': 'v' }],
      ['40 entries', Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, 'v']))],
    ];
  }
  if (kind === 'flags') {
    return [
      ['unknown flag', { junk: true }],
      ['flag "__proto__" (JSON)', JSON.parse('{"__proto__":true}')],
      ['string flag', { cpu: 'true', route: 'yes' }],
      ['number flag', { cpu: 1, route: 0 }],
      ['everything off', { cpu: false, wall: false, heap: false, route: false, method: false }],
    ];
  }
  return [];
}

const STRING_ALPHABET = ['a', 'Z', '0', '_', '.', '-', '/', ':', '{', '}', ',', '=', ' ', '\n', '\r', '\t', '\u0000', '\u007f', '"', "'", '\\', '%', 'µ', 's', 'm', 'h', '\u{1F4A5}'];

function randomString(rand: () => number): string {
  if (rand() < 0.05) return TEN_KB;
  const length = Math.floor(rand() * 24);
  let out = '';
  for (let i = 0; i < length; i++) out += STRING_ALPHABET[Math.floor(rand() * STRING_ALPHABET.length)];
  return out;
}

function randomNumber(rand: () => number): number {
  const specials = [NaN, Infinity, -Infinity, 0, -0, Number.MAX_VALUE, Number.MIN_VALUE, Number.MAX_SAFE_INTEGER, -1];
  const r = rand();
  if (r < 0.3) return specials[Math.floor(rand() * specials.length)];
  if (r < 0.6) return Math.floor((rand() - 0.5) * 2 * 10 ** Math.floor(rand() * 12));
  return (rand() - 0.5) * 10 ** Math.floor(rand() * 20);
}

function randomKey(rand: () => number): string {
  const keys = ['__proto__', 'constructor', 'prototype', 'cpu', 'route', 'k', '', 'a b', 'x\ny', 'content-length', 'authorization'];
  return rand() < 0.6 ? keys[Math.floor(rand() * keys.length)] : randomString(rand);
}

/** Random junk of any JS type, nested up to `depth`. Own `__proto__` keys via defineProperty. */
function randomValue(rand: () => number, depth = 0): unknown {
  switch (Math.floor(rand() * 10)) {
    case 0:
    case 1:
      return randomNumber(rand);
    case 2:
    case 3:
      return randomString(rand);
    case 4:
      return rand() < 0.5;
    case 5:
      return rand() < 0.5 ? null : undefined;
    case 6:
      return depth > 2 ? [] : Array.from({ length: Math.floor(rand() * 4) }, () => randomValue(rand, depth + 1));
    case 7: {
      const o: Record<string, unknown> = {};
      if (depth > 2) return o;
      for (let i = Math.floor(rand() * 4); i > 0; i--) {
        Object.defineProperty(o, randomKey(rand), { value: randomValue(rand, depth + 1), enumerable: true, writable: true, configurable: true });
      }
      return o;
    }
    case 8:
      return [() => 1, Symbol('r'), 7n][Math.floor(rand() * 3)];
    default:
      return `${Math.floor((rand() - 0.3) * 1000)}${['ms', 's', 'm', 'h', 'S', ' s', 'd', ''][Math.floor(rand() * 8)]}`;
  }
}

// --- the oracle: values that must be refused -----------------------------------------------------

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const GO_DURATION_CHARS = /^[0-9.]+(ns|us|µs|ms|s|m|h)([0-9.]+(ns|us|µs|ms|s|m|h))*$/;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Why `value` must be refused for an option of `kind`, or undefined when it may be accepted. */
function mustReject(option: string, kind: OptionKind, value: unknown): string | undefined {
  if (value === undefined) return undefined; // absent: the default applies
  switch (kind) {
    case 'string':
    case 'url':
    case 'path':
    case 'credential':
      if (typeof value !== 'string') return 'not a string';
      if (kind === 'string' && value.length > 2048) return 'longer than any Pyroscope name or label value';
      if (kind === 'url') return /^https?:\/\/[^\s]+$/.test(value.trim()) ? undefined : 'not an http(s) URL';
      if ((kind === 'credential' || kind === 'string') && CONTROL.test(value)) return 'control characters (an HTTP header cannot carry them)';
      if (kind === 'path' && value.includes('\u0000')) return 'a NUL byte (no file system accepts it)';
      if (kind === 'path' && value.length > 4096) return 'longer than PATH_MAX';
      if (option === 'basicAuthUser' && value.includes(':')) return 'a basic auth user name cannot contain ":" (RFC 7617)';
      return undefined;
    case 'tag':
      if (value === false) return undefined; // no instance tag
      if (typeof value !== 'string') return 'neither a string nor false';
      if (value.length === 0 || value.length > 2048) return 'empty, or longer than a Pyroscope label value';
      if (/[{},=\u0000-\u001f\u007f]/.test(value)) return 'a character Pyroscope forbids in a label value';
      return undefined;
    case 'threshold':
      if (value === false) return undefined; // off (or, for maxSessionsPerHour, unbounded)
      if (typeof value !== 'number') return 'neither a number nor false';
      if (!Number.isSafeInteger(value) || value < 0) return 'not a non-negative safe integer';
      return undefined;
    case 'number':
      if (typeof value !== 'number') return 'not a number';
      if (!Number.isSafeInteger(value) || value < 0) return 'not a non-negative safe integer';
      return undefined;
    case 'duration':
      if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? undefined : 'not a non-negative finite number';
      if (typeof value !== 'string') return 'not a number or a string';
      return GO_DURATION_CHARS.test(value.trim()) || value.trim() === '0' ? undefined : 'not a Go duration';
    case 'boolean':
      return typeof value === 'boolean' ? undefined : 'not a boolean';
    case 'endpoints': {
      if (!isPlainObject(value)) return 'not a plain object';
      const v = value as Record<string, unknown>;
      if (v.listen === undefined && typeof v.authorize !== 'function') return 'routes on the app without an authorize function';
      return undefined;
    }
    case 'flags':
      if (!isPlainObject(value)) return 'not a plain object';
      return Object.values(value).every((v) => typeof v === 'boolean') ? undefined : 'a flag that is not a boolean';
    case 'map':
      if (!isPlainObject(value)) return 'not a plain object';
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') return 'a value that is not a string';
        if (CONTROL.test(k) || CONTROL.test(v)) return 'control characters in a key or value';
        if (k === '') return 'an empty key';
      }
      return undefined;
  }
}

// --- running one case -----------------------------------------------------------------------------

type Outcome = { ok: true; app: FastifyInstance } | { ok: false; error: unknown };

async function register(options: unknown): Promise<Outcome> {
  const app = Fastify({ logger: false });
  try {
    app.register(profilingPlugin, options as never);
    let timer: NodeJS.Timeout | undefined;
    const hang = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`ready() did not settle within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    });
    await Promise.race([app.ready(), hang]).finally(() => clearTimeout(timer));
    return { ok: true, app };
  } catch (error) {
    await Promise.race([app.close().catch(() => undefined), sleep(1_000)]);
    return { ok: false, error };
  }
}

function repr(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...(${value.length})` : value);
  if (typeof value === 'symbol' || typeof value === 'function' || typeof value === 'bigint') return `[${typeof value}]`;
  try {
    const text = JSON.stringify(value) ?? String(value);
    return text.length > 80 ? `${text.slice(0, 80)}...` : text;
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/** Problems with one case, as text ('' when it behaved). */
async function checkCase(option: string, value: unknown, serverAddress: string): Promise<string[]> {
  const problems: string[] = [];
  const options = { ...baseOptions(option, serverAddress), [option]: value };
  const outcome = await register(options);
  const mustRefuse = mustReject(option, KIND[option], value);
  if (outcome.ok) {
    if (mustRefuse !== undefined) problems.push(`accepted, but must be refused (${mustRefuse})`);
    if (typeof outcome.app.profiler?.stats !== 'function') problems.push('registered without an app.profiler decorator');
    await outcome.app.close();
  } else {
    problems.push(...refusalProblems(option, outcome.error));
  }
  if (timeProfilerRunning()) problems.push('the time profiler was left running');
  if (heapSamplerRunning()) problems.push('the heap sampler was left running');
  return problems;
}

function refusalProblems(option: string, error: unknown): string[] {
  if (!(error instanceof ProfilingOptionError)) {
    const e = error as { name?: string; message?: string; code?: string };
    return [`refused with ${e?.name ?? typeof error} ${e?.code ?? ''}: ${String(e?.message ?? error).slice(0, 200)}`];
  }
  const problems: string[] = [];
  if (error.code !== 'FST_CONTINUOUS_PROFILING_INVALID_OPTION') problems.push(`code ${error.code}`);
  // One registration, one error: every problem it lists must be about this option or its partners.
  for (const { option: named } of error.problems) {
    const related = named === option || named.startsWith(`${option}.`) || (PARTNERS[option] ?? []).includes(named);
    if (!related) problems.push(`the error names option "${named}", not "${option}": ${error.message.slice(0, 200)}`);
  }
  const first = `Invalid option "${describeOptionName(error.option)}"`;
  const starts = error.problems.length === 1 ? first : `Invalid options (${error.problems.length} problems): (1) ${first}`;
  if (!error.message.startsWith(starts)) problems.push(`message does not start with the option: ${error.message.slice(0, 100)}`);
  if (CONTROL.test(error.message)) problems.push(`message has control characters (log injection): ${JSON.stringify(error.message.slice(0, 120))}`);
  if (error.message.length > MAX_MESSAGE_LENGTH) problems.push(`message is ${error.message.length} characters long`);
  return problems;
}

// --- the tests ------------------------------------------------------------------------------------

describe(`options fuzz (seed ${SEED}, ${RANDOM_CASES} random values per option)`, () => {
  let serverAddress: string;
  const optionNames = Object.keys(OptionsSchema.properties);

  beforeAll(async () => {
    serverAddress = await refusedUrl(); // nothing is uploaded: no case starts a session
  });

  it('knows the kind of every option (a new option gets fuzzed too)', () => {
    expect(optionNames.filter((name) => KIND[name] === undefined)).toEqual([]);
  });

  it.each(Object.keys(KIND))('%s: hostile and random values are refused clearly or work, nothing half-started', async (option) => {
    const rand = seededRandom(SEED ^ hash(option));
    const cases: Array<[string, unknown]> = [
      ...hostilePool(),
      ...shapedPool(KIND[option]),
      ...Array.from({ length: RANDOM_CASES }, (_, i): [string, unknown] => [`random #${i}`, randomValue(rand)]),
    ];
    const failures: string[] = [];
    for (const [name, value] of cases) {
      const problems = await checkCase(option, value, serverAddress);
      for (const problem of problems) failures.push(`${option} = ${name} ${repr(value)}: ${problem}`);
    }
    if (failures.length > 0) failures.unshift(`reproduce with FCP_FUZZ_SEED=${SEED} FCP_FUZZ_CASES=${RANDOM_CASES}`);
    expect(failures).toEqual([]);
  });

  it.each([
    ['null', null],
    ['an array', []],
    ['a string', 'appName=x'],
    ['a number', 42],
    ['JSON with a top-level __proto__', JSON.parse('{"__proto__":{"appName":"x","enabled":false}}')],
    ['JSON with constructor.prototype', JSON.parse('{"constructor":{"prototype":{"enabled":false}}}')],
  ])('the whole options object is %s: a clear refusal', async (_name, options) => {
    const outcome = await register(options);
    expect(outcome.ok).toBe(false);
    const error = (outcome as { error: unknown }).error;
    expect(error).toBeInstanceOf(ProfilingOptionError);
    expect((error as ProfilingOptionError).code).toBe('FST_CONTINUOUS_PROFILING_INVALID_OPTION');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).enabled).toBeUndefined();
  });

  it('nothing was polluted, and a valid registration still profiles in this process', async () => {
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
    // Only start()/stop() may run a session here: the first threshold check (1 s after ready) can
    // read 1000 ‰ on a loaded machine and start one of its own (seen in CI at load average 3.7).
    jest.spyOn(CpuUsageMeter.prototype, 'measure').mockResolvedValue(0);
    const outcome = await register(baseOptions('none', serverAddress));
    expect(outcome.ok).toBe(true);
    const app = (outcome as { app: FastifyInstance }).app;
    try {
      expect(app.profiler.start()).toBe(true);
      expect(timeProfilerRunning()).toBe(true);
      await app.profiler.stop();
      expect(app.profiler.stats()).toMatchObject({ sessions: 1, engineErrors: 0 });
    } finally {
      // a failure must not leave the engine running for the next test file of this worker
      await app.close();
      jest.restoreAllMocks();
    }
    expect(timeProfilerRunning()).toBe(false);
  });
});

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}
