import os from 'node:os';
import { DEFAULTS, resolveOptions } from '../src/options';
import { ProfilingOptionError } from '../src/errors';
import { parseDuration, formatDuration } from '../src/duration';
import { defaultInstanceName } from '../src/instance';

const base = { appName: 'greet', serverAddress: 'http://localhost:4040' };
const noEnv = {};

/** The error resolveOptions throws for `raw`, asserting it is a ProfilingOptionError. */
function errorFor(raw: unknown, env: Record<string, string> = {}): ProfilingOptionError {
  try {
    resolveOptions(raw, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ProfilingOptionError);
    expect((error as ProfilingOptionError).code).toBe('FST_CONTINUOUS_PROFILING_INVALID_OPTION');
    return error as ProfilingOptionError;
  }
  throw new Error(`expected ${JSON.stringify(raw)} to be rejected`);
}

describe('parseDuration', () => {
  it.each([
    [1500, 1500],
    [0, 0],
    ['0', 0],
    ['500ms', 500],
    ['15s', 15_000],
    ['2m', 120_000],
    ['1h30m', 5_400_000],
    ['1.5s', 1500],
    ['2m30s', 150_000],
    ['1500us', 2],
    [' 10s ', 10_000],
  ])('%p -> %p ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each([['15 sec'], ['15'], ['s'], ['-1s'], [''], ['1d'], ['10S'], [-1], [NaN], [Infinity], [null], [{}], ['1h 30m']])('rejects %p', (input) => {
    expect(parseDuration(input)).toBeUndefined();
  });

  it('formats durations back', () => {
    expect(formatDuration(120_000)).toBe('2m');
    expect(formatDuration(1500)).toBe('1.5s');
    expect(formatDuration(3_600_000)).toBe('1h');
    expect(formatDuration(250)).toBe('250ms');
  });
});

describe('resolveOptions: defaults', () => {
  it('applies every default', () => {
    const o = resolveOptions(base, noEnv);
    expect(o).toMatchObject({
      enabled: true,
      appName: 'greet',
      serverAddress: 'http://localhost:4040',
      headers: {},
      tags: {},
      cpuThreshold: 700,
      eventLoopThreshold: false,
      heapThreshold: false,
      memoryThreshold: false,
      checkInterval: 10_000,
      cooldown: 0,
      maxSessionsPerHour: false,
      profilingDuration: 120_000,
      uploadRate: 15_000,
      profileTypes: { cpu: true, wall: false, heap: true },
      sampleRate: 100,
      heapSamplingInterval: 524_288,
      flushTimeout: 5_000,
      uploadTimeout: 10_000,
      labels: { route: true, method: true },
      maxLabelValues: DEFAULTS.maxLabelValues,
      maxOutputFiles: DEFAULTS.maxOutputFiles,
      maxOutputBytes: DEFAULTS.maxOutputBytes,
      maxUploadRetries: 3,
      maxPendingUploads: 50,
      maxPendingBytes: 20 * 1024 * 1024,
      allowInsecureAuth: false,
      sourceMaps: true,
      absolutePaths: false,
    });
    expect(o.root).toBeUndefined();
    expect(o.authToken).toBeUndefined();
    expect(o.outputDir).toBeUndefined();
  });

  it('parses Go durations and keeps milliseconds', () => {
    const o = resolveOptions({ ...base, checkInterval: '500ms', profilingDuration: '1h30m', uploadRate: 20_000, flushTimeout: '2s', uploadTimeout: '1s' }, noEnv);
    expect(o).toMatchObject({ checkInterval: 500, profilingDuration: 5_400_000, uploadRate: 20_000, flushTimeout: 2000, uploadTimeout: 1000 });
  });

  it('merges partial profileTypes and labels with the defaults', () => {
    const o = resolveOptions({ ...base, profileTypes: { wall: true }, labels: { method: false } }, noEnv);
    expect(o.profileTypes).toEqual({ cpu: true, wall: true, heap: true });
    expect(o.labels).toEqual({ route: true, method: false });
  });

  it('strips a trailing slash from the server address and keeps a path prefix', () => {
    expect(resolveOptions({ ...base, serverAddress: 'https://profiles.example.com/pyroscope/' }, noEnv).serverAddress).toBe(
      'https://profiles.example.com/pyroscope',
    );
  });

  it('takes sourceMaps, root and absolutePaths', () => {
    expect(resolveOptions({ ...base, sourceMaps: false, root: '/srv/app' }, noEnv)).toMatchObject({ sourceMaps: false, root: '/srv/app', absolutePaths: false });
    expect(resolveOptions({ ...base, absolutePaths: true }, noEnv)).toMatchObject({ sourceMaps: true, absolutePaths: true });
  });

  it('does not require a destination nor an app name when disabled', () => {
    expect(resolveOptions({ enabled: false }, noEnv).enabled).toBe(false);
  });

  it('accepts outputDir instead of a server', () => {
    const o = resolveOptions({ appName: 'greet', outputDir: '/tmp/p' }, noEnv);
    expect(o.serverAddress).toBeUndefined();
    expect(o.outputDir).toBe('/tmp/p');
  });

  it('ignores keys whose value is undefined', () => {
    expect(resolveOptions({ ...base, tags: undefined, instance: false }, noEnv).tags).toEqual({});
  });
});

describe('resolveOptions: the instance tag (which process a profile comes from)', () => {
  it('defaults to <hostname>/<pid>, added to the tags', () => {
    expect(defaultInstanceName()).toBe(`${os.hostname()}/${process.pid}`);
    expect(resolveOptions({ ...base, tags: { env: 'prod' } }, noEnv).tags).toEqual({ env: 'prod', instance: `${os.hostname()}/${process.pid}` });
  });

  it('takes a name of the user\'s, or their own tags.instance, or false for none', () => {
    expect(resolveOptions({ ...base, instance: 'web-1', tags: { instance: 'ignored' } }, noEnv).tags).toEqual({ instance: 'web-1' });
    expect(resolveOptions({ ...base, tags: { instance: 'pod-7' } }, noEnv).tags).toEqual({ instance: 'pod-7' });
    expect(resolveOptions({ ...base, instance: false, tags: { env: 'prod' } }, noEnv).tags).toEqual({ env: 'prod' });
  });

  it('refuses a value Pyroscope would refuse, and anything but a string or false', () => {
    expect(() => resolveOptions({ ...base, instance: 'a,b' }, noEnv)).toThrow(
      'Invalid option "instance": got "a,b"; expected a tag value that must not contain "{", "}", ",", "=" or control characters, or false',
    );
    expect(() => resolveOptions({ ...base, instance: true } as never, noEnv)).toThrow('Invalid option "instance": got true; expected a tag value naming this process');
  });
});

describe('resolveOptions: environment variables', () => {
  const env = {
    PYROSCOPE_APPLICATION_NAME: 'from-env',
    PYROSCOPE_SERVER_ADDRESS: 'https://pyro.example.com',
    PYROSCOPE_BASIC_AUTH_USER: 'u',
    PYROSCOPE_BASIC_AUTH_PASSWORD: 'p',
    PYROSCOPE_TENANT_ID: 'team-a',
  };

  it('fills options from PYROSCOPE_* variables', () => {
    const o = resolveOptions({}, env);
    expect(o).toMatchObject({ appName: 'from-env', serverAddress: 'https://pyro.example.com', basicAuthUser: 'u', basicAuthPassword: 'p', tenantID: 'team-a' });
  });

  it('reads PYROSCOPE_AUTH_TOKEN', () => {
    expect(resolveOptions(base, { PYROSCOPE_AUTH_TOKEN: 'tok' }).authToken).toBe('tok');
  });

  it('lets explicit options win', () => {
    const o = resolveOptions({ appName: 'explicit', serverAddress: 'https://other.example.com' }, env);
    expect(o.appName).toBe('explicit');
    expect(o.serverAddress).toBe('https://other.example.com');
  });

  it('treats an empty variable as unset', () => {
    expect(errorFor({ serverAddress: 'http://localhost:4040' }, { PYROSCOPE_APPLICATION_NAME: '' }).message).toContain('PYROSCOPE_APPLICATION_NAME');
  });
});

describe('resolveOptions: every rejection names the option, the value and what is allowed', () => {
  it.each<[string, Record<string, unknown>, RegExp]>([
    ['missing appName', { serverAddress: 'http://localhost:4040' }, /"appName".*got undefined.*PYROSCOPE_APPLICATION_NAME/],
    ['no destination', { appName: 'greet' }, /"serverAddress".*got undefined.*outputDir/],
    ['not a URL', { ...base, serverAddress: 'localhost 4040' }, /"serverAddress".*"localhost 4040".*http:\/\/ or https:\/\//],
    ['ftp URL', { ...base, serverAddress: 'ftp://host' }, /"serverAddress".*"ftp:\/\/host".*http:\/\/ or https:\/\//],
    ['URL with query', { ...base, serverAddress: 'http://localhost:4040/?x=1' }, /"serverAddress".*without query/],
    ['threshold 1001', { ...base, cpuThreshold: 1001 }, /"cpuThreshold".*1001.*from 0 to 1000/],
    ['threshold -1', { ...base, cpuThreshold: -1 }, /"cpuThreshold".*-1.*from 0 to 1000/],
    ['threshold 0.5', { ...base, cpuThreshold: 0.5 }, /"cpuThreshold".*0\.5.*integer/],
    ['threshold as string', { ...base, cpuThreshold: '700' }, /"cpuThreshold".*"700".*integer from 0 to 1000.*or false \(off\)/],
    ['threshold true', { ...base, cpuThreshold: true }, /"cpuThreshold".*true.*integer from 0 to 1000.*or false \(off\)/],
    ['eventLoopThreshold 0', { ...base, eventLoopThreshold: 0 }, /"eventLoopThreshold".*got 0.*from 1 to 1000, or false \(off\)/],
    ['eventLoopThreshold 1001', { ...base, eventLoopThreshold: 1001 }, /"eventLoopThreshold".*1001.*from 1 to 1000/],
    ['eventLoopThreshold 0.8', { ...base, eventLoopThreshold: 0.8 }, /"eventLoopThreshold".*0\.8.*integer from 1 to 1000/],
    ['eventLoopThreshold true', { ...base, eventLoopThreshold: true }, /"eventLoopThreshold".*true.*event-loop utilization.*or false/],
    ['heapThreshold as string', { ...base, heapThreshold: '80%' }, /"heapThreshold".*"80%".*heap limit.*or false/],
    ['heapThreshold 0', { ...base, heapThreshold: 0 }, /"heapThreshold".*got 0.*from 1 to 1000/],
    ['memoryThreshold -1', { ...base, memoryThreshold: -1 }, /"memoryThreshold".*-1.*from 1 to 1000/],
    ['memoryThreshold null', { ...base, memoryThreshold: null }, /"memoryThreshold".*null.*memory available.*or false/],
    ['cooldown "10 min"', { ...base, cooldown: '10 min' }, /"cooldown".*"10 min".*Go duration string/],
    ['cooldown negative', { ...base, cooldown: -1 }, /"cooldown".*-1.*duration/],
    ['cooldown over a day', { ...base, cooldown: '25h' }, /"cooldown".*"25h".*to 86400000 ms/],
    ['maxSessionsPerHour 0', { ...base, maxSessionsPerHour: 0 }, /"maxSessionsPerHour".*got 0.*from 1 to 3600, or false \(unbounded\)/],
    ['maxSessionsPerHour 2.5', { ...base, maxSessionsPerHour: 2.5 }, /"maxSessionsPerHour".*2\.5.*integer from 1 to 3600/],
    ['maxSessionsPerHour true', { ...base, maxSessionsPerHour: true }, /"maxSessionsPerHour".*true.*unbounded, the default/],
    ['"15 sec"', { ...base, uploadRate: '15 sec' }, /"uploadRate".*"15 sec".*Go duration string/],
    ['negative duration', { ...base, checkInterval: -5 }, /"checkInterval".*-5.*duration/],
    ['uploadRate longer than profilingDuration', { ...base, uploadRate: '3m', profilingDuration: '2m' }, /"uploadRate".*"3m".*no longer than profilingDuration \(120000 ms\)/],
    ['uploadRate too short', { ...base, uploadRate: '100ms' }, /"uploadRate".*"100ms".*from 1000 ms/],
    ['app name with a space', { ...base, appName: 'my app' }, /"appName".*"my app".*letters, digits/],
    ['app name with braces', { ...base, appName: 'app{x}' }, /"appName".*"app\{x\}"/],
    ['tag name with a dash', { ...base, tags: { 'my-tag': 'v' } }, /"tags".*"my-tag".*letters, digits, "_" and "."/],
    ['tag value with a comma', { ...base, tags: { region: 'eu,us' } }, /"tags.region".*"eu,us".*"\{", "\}", ",", "="/],
    ['reserved tag', { ...base, tags: { service_name: 'x' } }, /"tags".*"service_name".*reserved/],
    ['tag named route', { ...base, tags: { route: 'x' } }, /"tags".*"route".*other than "route"/],
    ['tag named thread', { ...base, tags: { thread: 'x' } }, /"tags".*"thread".*other than "thread".*worker threads take part \(or maxWorkers: 0\)/],
    ['maxWorkers negative', { ...base, maxWorkers: -1 }, /"maxWorkers".*-1.*an integer from 0 to 256/],
    ['maxWorkers fractional', { ...base, maxWorkers: 1.5 }, /"maxWorkers".*1.5.*an integer from 0 to 256/],
    ['too many tags', { ...base, instance: false, tags: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`t${i}`, 'v'])) }, /"tags".*21 tags.*at most 20 tags.*30 labels per series/],
    ['too many tags with instance', { ...base, tags: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`t${i}`, 'v'])) }, /"tags".*21 tags \(with instance\).*at most 20 tags, "instance" included \(instance: false leaves it out\)/],
    ['unknown option', { ...base, serverAddr: 'x' }, /"serverAddr".*unknown option "serverAddr"; known: appName/],
    ['profileTypes unknown key', { ...base, profileTypes: { goroutines: true } }, /"profileTypes.goroutines".*got true.*with boolean "cpu", "wall" and "heap"/],
    ['nothing to collect', { ...base, profileTypes: { cpu: false, heap: false } }, /"profileTypes".*at least one/],
    ['sampleRate 0', { ...base, sampleRate: 0 }, /"sampleRate".*0.*from 1 to 1000/],
    ['heapSamplingInterval tiny', { ...base, heapSamplingInterval: 10 }, /"heapSamplingInterval".*10.*from 1024/],
    ['enabled as string', { ...base, enabled: 'yes' }, /"enabled".*"yes".*true or false/],
    ['header with newline', { ...base, headers: { 'x-a': 'a\r\nb' } }, /"headers.x-a".*without line breaks/],
    ['bad header name', { ...base, headers: { 'x a': 'v' } }, /"headers.x a".*valid HTTP header name/],
    ['token and basic auth', { ...base, authToken: 't', basicAuthUser: 'u', basicAuthPassword: 'p' }, /"authToken".*either authToken or basicAuthUser/],
    ['user without password', { ...base, basicAuthUser: 'u' }, /"basicAuthPassword".*given together/],
    ['credentials over http to a remote host', { ...base, serverAddress: 'http://pyro.example.com', authToken: 't' }, /"serverAddress".*allowInsecureAuth/],
    ['credentials in the URL', { ...base, serverAddress: 'http://user:secret@localhost:4040' }, /"serverAddress".*without credentials/],
    ['options not an object', [] as unknown as Record<string, unknown>, /"options".*an object/],
    ['sourceMaps as string', { ...base, sourceMaps: 'on' }, /"sourceMaps".*"on".*true or false/],
    ['empty root', { ...base, root: ' ' }, /"root".*directory path of 1 to 4096/],
    ['root and absolutePaths', { ...base, root: '/srv/app', absolutePaths: true }, /"root".*either root.*or absolutePaths: true.*not both/],
  ])('%s', (_name, raw, message) => {
    expect(errorFor(raw).message).toMatch(message);
  });

  it('never prints a secret in the message', () => {
    const e1 = errorFor({ ...base, authToken: 12345 as unknown as string });
    expect(e1.message).not.toContain('12345');
    const e2 = errorFor({ ...base, serverAddress: 'http://user:secret@localhost:4040' });
    expect(e2.message).not.toContain('secret');
  });

  it('allows credentials over plain http to loopback, and to anywhere with allowInsecureAuth', () => {
    expect(resolveOptions({ ...base, authToken: 't' }, noEnv).authToken).toBe('t');
    expect(resolveOptions({ ...base, serverAddress: 'http://pyro.internal', authToken: 't', allowInsecureAuth: true }, noEnv).authToken).toBe('t');
  });

  it('reduces the tag budget when built-in labels are off', () => {
    const tags = Object.fromEntries(Array.from({ length: 22 }, (_, i) => [`t${i}`, 'v']));
    expect(Object.keys(resolveOptions({ ...base, tags, instance: false, labels: { route: false, method: false } }, noEnv).tags)).toHaveLength(22);
  });
});

describe('resolveOptions: triggers', () => {
  it('takes false for every trigger (all off = manual only) and for the hourly bound', () => {
    const o = resolveOptions({ ...base, cpuThreshold: false, eventLoopThreshold: false, heapThreshold: false, memoryThreshold: false, maxSessionsPerHour: false }, noEnv);
    expect(o).toMatchObject({ cpuThreshold: false, eventLoopThreshold: false, heapThreshold: false, memoryThreshold: false, maxSessionsPerHour: false });
  });

  it('takes thresholds at the ends of their ranges, a cooldown as a Go duration and an hourly bound', () => {
    const o = resolveOptions({ ...base, cpuThreshold: 0, eventLoopThreshold: 1, heapThreshold: 1000, memoryThreshold: 900, cooldown: '10m', maxSessionsPerHour: 6 }, noEnv);
    expect(o).toMatchObject({ cpuThreshold: 0, eventLoopThreshold: 1, heapThreshold: 1000, memoryThreshold: 900, cooldown: 600_000, maxSessionsPerHour: 6 });
  });
});

describe('resolveOptions: values that would break uploads or hide mistakes', () => {
  it.each<[string, Record<string, unknown>, RegExp]>([
    ['a token with a line break', { ...base, authToken: 'a\nb' }, /"authToken".*without control characters/],
    ['a user with a colon', { ...base, basicAuthUser: 'a:b', basicAuthPassword: 'p' }, /"basicAuthUser".*without ":"/],
    ['a tenant with NUL', { ...base, tenantID: 't\u0000' }, /"tenantID".*without control characters/],
    ['a 10 kB app name', { ...base, appName: 'a'.repeat(10_000) }, /"appName".*1 to 512/],
    ['a Map for tags', { ...base, tags: new Map([['a', 'b']]) }, /"tags".*an object of tag names/],
    ['an outputDir with NUL', { appName: 'greet', outputDir: '/tmp/a\u0000b' }, /"outputDir".*without control characters/],
    ['an Authorization header over plain http to a remote host', { ...base, serverAddress: 'http://pyro.example.com', headers: { Authorization: 'Bearer x' } }, /"serverAddress".*allowInsecureAuth/],
  ])('%s', (_name, raw, message) => {
    expect(errorFor(raw).message).toMatch(message);
  });

  it('escapes invisible characters in option names and values', () => {
    const e = errorFor({ ...base, headers: { 'x\ny': 'v' } });
    expect(e.message).toContain('Invalid option "headers.x\\u000ay"');
    expect(errorFor({ ...base, appName: 'a\u007fb' }).message).toContain('"a\\u007fb"');
  });
});

describe('resolveOptions: one registration, one error listing every problem', () => {
  it('reports each bad option with its value and what is allowed, in one message and in `problems`', () => {
    const error = errorFor({ ...base, cpuThreshold: 1200, uploadRate: '15 sec' });
    expect(error.problems.map((p) => p.option)).toEqual(['cpuThreshold', 'uploadRate']);
    expect(error.problems[0]).toEqual({ option: 'cpuThreshold', received: '1200', expected: 'an integer from 0 to 1000, or false (off)' });
    expect(error.problems[1]).toMatchObject({ option: 'uploadRate', received: '"15 sec"' });
    expect(error.option).toBe('cpuThreshold');
    expect(error.message).toMatch(/^Invalid options \(2 problems\): \(1\) Invalid option "cpuThreshold": got 1200; expected an integer from 0 to 1000, or false \(off\) \(2\) Invalid option "uploadRate": got "15 sec"; expected a duration/);
    expect(error.message).not.toMatch(/\n/);
  });

  it('lists schema (type) problems, unknown options and value problems together', () => {
    const error = errorFor({ ...base, sampleRate: 'fast', cpuTreshold: 500, maxLabelValues: 0, profileTypes: { cpu: 'yes' } });
    expect(error.problems.map((p) => p.option).sort()).toEqual(['cpuTreshold', 'maxLabelValues', 'profileTypes.cpu', 'sampleRate']);
  });

  it('reports a bad value once, not again as "missing" (appName of the wrong type, half of basic auth)', () => {
    expect(errorFor({ appName: 42, serverAddress: 'http://localhost:4040' }).problems.map((p) => p.option)).toEqual(['appName']);
    expect(errorFor({ ...base, basicAuthUser: 'a:b', basicAuthPassword: 'x' }).problems.map((p) => p.option)).toEqual(['basicAuthUser']);
  });

  it('does not invent a cross-field problem from an invalid field (profilingDuration invalid, uploadRate fine)', () => {
    expect(errorFor({ ...base, profilingDuration: 'soon' }).problems.map((p) => p.option)).toEqual(['profilingDuration']);
  });

  it('a single problem keeps the single-problem message', () => {
    const error = errorFor({ ...base, cpuThreshold: 1200 });
    expect(error.problems).toHaveLength(1);
    expect(error.message).toBe('Invalid option "cpuThreshold": got 1200; expected an integer from 0 to 1000, or false (off)');
  });
});

describe('maxWorkers', () => {
  it('defaults to 16; above 0, `thread` takes one label of the per-sample budget and is no tag name', () => {
    const opts = { appName: 'greet', serverAddress: 'http://localhost:4040' };
    expect(resolveOptions(opts, {}).maxWorkers).toBe(16);
    const off = resolveOptions({ ...opts, maxWorkers: 0, instance: false, tags: { thread: 'x' } }, {});
    expect(off.maxWorkers).toBe(0);
    expect(off.tags).toEqual({ thread: 'x' });
    expect(resolveOptions(opts, {}).maxLabelsPerSample).toBe(resolveOptions({ ...opts, maxWorkers: 0 }, {}).maxLabelsPerSample - 1);
  });
});
