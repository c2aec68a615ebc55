import { fromGoZeroConfig, type GoZeroProfilingConfig } from '../src/go-zero';
import { ProfilingOptionError } from '../src/errors';
import { resolveOptions } from '../src/options';
import type { MinimalLogger } from '../src/types';
import { loadConfig } from '../example-app/internal/config/config';

/** A logger that remembers what it was told. */
function recordingLogger() {
  const lines: { level: string; obj: unknown; msg?: string }[] = [];
  const logger: MinimalLogger = {
    info: (obj, msg) => lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => lines.push({ level: 'error', obj, msg }),
    debug: (obj, msg) => lines.push({ level: 'debug', obj, msg }),
  };
  const at = (level: string) => lines.filter((line) => line.level === level);
  return { logger, lines, at };
}

/** The error a call throws, for assertions on its type and message. */
function thrown(fn: () => unknown): ProfilingOptionError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ProfilingOptionError);
    return error as ProfilingOptionError;
  }
  throw new Error('expected an error, none was thrown');
}

/** Map with a service name and no logger; YAML input is untyped, hence `unknown`. */
function map(block: unknown, extra: { outputDir?: string; logger?: MinimalLogger } = {}) {
  return fromGoZeroConfig(block as GoZeroProfilingConfig, { name: 'greet', logger: recordingLogger().logger, ...extra });
}

const KNOWN_KEYS = 'Name, ServerAddr, CpuThreshold, CheckInterval, ProfilingDuration, UploadRate, UploadDuration, AuthUser, AuthPassword, ProfileType';

describe('fromGoZeroConfig: mappings', () => {
  test('the walkthrough block maps key by key, durations as written', () => {
    const options = map({
      ServerAddr: 'http://localhost:4040',
      CpuThreshold: 0,
      CheckInterval: '10s',
      ProfilingDuration: '2m',
      UploadRate: '15s',
      AuthUser: 'alice',
      AuthPassword: 's3cret',
      ProfileType: { CPU: true, Memory: false },
    });
    expect(options).toEqual({
      appName: 'greet',
      serverAddress: 'http://localhost:4040',
      cpuThreshold: 0,
      checkInterval: '10s',
      profilingDuration: '2m',
      uploadRate: '15s',
      basicAuthUser: 'alice',
      basicAuthPassword: 's3cret',
      profileTypes: { cpu: true, heap: false },
    });
  });

  test('only what was given is produced, so the plugin defaults (equal to go-zero defaults) apply', () => {
    expect(map({ ServerAddr: 'http://pyroscope:4040' })).toEqual({ appName: 'greet', serverAddress: 'http://pyroscope:4040' });
  });

  test('the service Name becomes appName; a Name inside the block wins, as go-zero inherits it only when absent', () => {
    expect(map({ ServerAddr: 'http://p:4040' }).appName).toBe('greet');
    expect(map({ ServerAddr: 'http://p:4040', Name: 'greet-canary' }).appName).toBe('greet-canary');
  });

  test('UploadDuration, the name go-zero documents, is accepted as UploadRate', () => {
    expect(map({ ServerAddr: 'http://p:4040', UploadDuration: '30s' }).uploadRate).toBe('30s');
  });

  test('UploadRate and UploadDuration together are fine when they mean the same duration', () => {
    expect(map({ ServerAddr: 'http://p:4040', UploadRate: '15s', UploadDuration: '15000ms' }).uploadRate).toBe('15s');
  });

  test('ProfileType.CPU maps to profileTypes.cpu and Memory to profileTypes.heap, each only when given', () => {
    expect(map({ ServerAddr: 'http://p:4040', ProfileType: { CPU: false } }).profileTypes).toEqual({ cpu: false });
    expect(map({ ServerAddr: 'http://p:4040', ProfileType: { Memory: true } }).profileTypes).toEqual({ heap: true });
    expect(map({ ServerAddr: 'http://p:4040', ProfileType: {} })).not.toHaveProperty('profileTypes');
  });

  test('keys match case-insensitively, as go-zero loads config', () => {
    const options = map({ serveraddr: 'http://p:4040', cpuThreshold: 500, profiletype: { cpu: false, MEMORY: true } });
    expect(options).toEqual({ appName: 'greet', serverAddress: 'http://p:4040', cpuThreshold: 500, profileTypes: { cpu: false, heap: true } });
  });

  test('YAML nulls (a key with nothing after it) count as absent', () => {
    expect(map({ ServerAddr: 'http://p:4040', UploadRate: null, ProfileType: null })).toEqual({ appName: 'greet', serverAddress: 'http://p:4040' });
  });
});

describe('fromGoZeroConfig: ServerAddr empty turns profiling off unless outputDir is given', () => {
  test.each([
    ['absent', {}],
    ['empty', { ServerAddr: '' }],
    ['blank', { ServerAddr: '  ' }],
    ['YAML null', { ServerAddr: null }],
  ])('ServerAddr %s and no outputDir: enabled false, said once at info', (_label, block) => {
    const log = recordingLogger();
    const options = map(block, { logger: log.logger });
    expect(options).toEqual({ appName: 'greet', enabled: false });
    expect(log.at('info')).toHaveLength(1);
    expect(log.at('info')[0].msg).toMatch(/Profiling\.ServerAddr is empty: continuous profiling is off/);
  });

  test('no Profiling block at all: off', () => {
    expect(map(undefined)).toEqual({ appName: 'greet', enabled: false });
    expect(map(null)).toEqual({ appName: 'greet', enabled: false });
  });

  test('ServerAddr empty with outputDir: profiles go to files, the plugin stays enabled', () => {
    const log = recordingLogger();
    const options = map({ ServerAddr: '', CpuThreshold: 0 }, { outputDir: '/tmp/profiles', logger: log.logger });
    expect(options).toEqual({ appName: 'greet', cpuThreshold: 0, outputDir: '/tmp/profiles' });
    expect(log.lines).toHaveLength(0);
  });

  test('ServerAddr and outputDir: both', () => {
    expect(map({ ServerAddr: 'http://p:4040' }, { outputDir: 'out' })).toEqual({ appName: 'greet', serverAddress: 'http://p:4040', outputDir: 'out' });
  });
});

describe('fromGoZeroConfig: go-zero profile types Node.js lacks', () => {
  test.each([
    ['Goroutines', /Profiling\.ProfileType\.Goroutines: Node\.js has no goroutines .*; ignored/],
    ['Mutex', /Profiling\.ProfileType\.Mutex: Node\.js has no mutex contention profile; ignored/],
  ])('%s: true logs one warning naming it, and maps to nothing', (key, message) => {
    const log = recordingLogger();
    const options = map({ ServerAddr: 'http://p:4040', ProfileType: { [key]: true } }, { logger: log.logger });
    expect(options).toEqual({ appName: 'greet', serverAddress: 'http://p:4040' });
    expect(log.at('warn')).toHaveLength(1);
    expect(log.at('warn')[0].msg).toMatch(message);
    expect(log.at('warn')[0].obj).toEqual({ option: `Profiling.ProfileType.${key}` });
  });

  test('Block: true maps to wall profiling, logged once at info, no warning', () => {
    const log = recordingLogger();
    const options = map({ ServerAddr: 'http://p:4040', ProfileType: { Block: true } }, { logger: log.logger });
    expect(options).toEqual({ appName: 'greet', serverAddress: 'http://p:4040', profileTypes: { wall: true } });
    expect(log.at('warn')).toHaveLength(0);
    expect(log.at('info')).toHaveLength(1);
    expect(log.at('info')[0].msg).toMatch(/^Profiling\.ProfileType\.Block: mapped to profileTypes\.wall/);
    expect(log.at('info')[0].obj).toEqual({ option: 'Profiling.ProfileType.Block' });
    expect(map({ ServerAddr: 'http://p:4040', ProfileType: { Block: false } })).toEqual({ appName: 'greet', serverAddress: 'http://p:4040' });
  });

  test('all true: two warnings, CPU, Memory and Block (as wall) mapped', () => {
    const log = recordingLogger();
    const options = map(
      { ServerAddr: 'http://p:4040', ProfileType: { CPU: true, Memory: true, Goroutines: true, Mutex: true, Block: true } },
      { logger: log.logger },
    );
    expect(options.profileTypes).toEqual({ cpu: true, heap: true, wall: true });
    expect(log.at('warn').map((line) => (line.obj as { option: string }).option)).toEqual([
      'Profiling.ProfileType.Goroutines',
      'Profiling.ProfileType.Mutex',
    ]);
  });

  test('false or absent: no warning', () => {
    const log = recordingLogger();
    map({ ServerAddr: 'http://p:4040', ProfileType: { Goroutines: false, Mutex: false, Block: false, CPU: true } }, { logger: log.logger });
    expect(log.lines).toHaveLength(0);
  });

  test('ProfileType.Logger, a go-zero key, is accepted without effect or warning', () => {
    const log = recordingLogger();
    expect(map({ ServerAddr: 'http://p:4040', ProfileType: { Logger: true } }, { logger: log.logger })).toEqual({
      appName: 'greet',
      serverAddress: 'http://p:4040',
    });
    expect(log.lines).toHaveLength(0);
  });

  test('without a logger the warning becomes a process warning with a stable code', () => {
    const emitted: { message: string; code?: string }[] = [];
    const spy = jest.spyOn(process, 'emitWarning').mockImplementation(((warning: string | Error, options?: { code?: string }) => {
      emitted.push({ message: String(warning), code: options?.code });
    }) as typeof process.emitWarning);
    try {
      fromGoZeroConfig({ ServerAddr: 'http://p:4040', ProfileType: { Mutex: true } }, { name: 'greet' });
    } finally {
      spy.mockRestore();
    }
    expect(emitted).toEqual([
      { message: 'Profiling.ProfileType.Mutex: Node.js has no mutex contention profile; ignored', code: 'FST_CONTINUOUS_PROFILING_GO_ZERO_UNSUPPORTED' },
    ]);
  });
});

describe('fromGoZeroConfig: errors name the key, the value and what is expected', () => {
  test('an unknown key is an error listing the known ones', () => {
    const error = thrown(() => map({ ServerAddr: 'http://p:4040', UploadInterval: '15s' }));
    expect(error.option).toBe('Profiling.UploadInterval');
    expect(error.message).toBe(
      `Invalid option "Profiling.UploadInterval": got "15s"; expected a known key (unknown key "UploadInterval"; known: ${KNOWN_KEYS})`,
    );
  });

  test('an unknown ProfileType key is an error listing the known ones', () => {
    const error = thrown(() => map({ ServerAddr: 'http://p:4040', ProfileType: { Heap: true } }));
    expect(error.message).toBe(
      'Invalid option "Profiling.ProfileType.Heap": got true; expected a known key (unknown key "Heap"; known: CPU, Memory, Goroutines, Mutex, Block, Logger)',
    );
  });

  test('the same key twice in different case is an error', () => {
    const error = thrown(() => map({ ServerAddr: 'http://p:4040', CpuThreshold: 0, cputhreshold: 700 }));
    expect(error.message).toBe(
      'Invalid option "Profiling.cputhreshold": got 700; expected one spelling of the key: "CpuThreshold" already sets Profiling.CpuThreshold (keys are case-insensitive)',
    );
  });

  test('UploadRate and UploadDuration with different durations is an error naming both', () => {
    const error = thrown(() => map({ ServerAddr: 'http://p:4040', UploadRate: '15s', UploadDuration: '30s' }));
    expect(error.message).toBe(
      'Invalid option "Profiling.UploadDuration": got "30s"; expected the same duration as Profiling.UploadRate ("15s"), or only one of the two: UploadDuration is another name for UploadRate',
    );
  });

  test.each([
    ['ServerAddr', 4040, '4040', 'a string (quote it in YAML if it looks like a number or a boolean)'],
    ['AuthUser', true, 'true', 'a string (quote it in YAML if it looks like a number or a boolean)'],
    ['Name', ['greet'], '["greet"]', 'a string (quote it in YAML if it looks like a number or a boolean)'],
    ['CpuThreshold', '700', '"700"', 'an integer (per mille: 700 = 70 % of the CPU available; 0 = always on)'],
    ['CpuThreshold', 70.5, '70.5', 'an integer (per mille: 700 = 70 % of the CPU available; 0 = always on)'],
    ['CheckInterval', '10 sec', '"10 sec"', 'a Go duration string such as "500ms", "15s", "2m" or "1h30m"'],
    ['ProfilingDuration', true, 'true', 'a Go duration string such as "500ms", "15s", "2m" or "1h30m"'],
    ['UploadDuration', 'soon', '"soon"', 'a Go duration string such as "500ms", "15s", "2m" or "1h30m"'],
    [
      'UploadRate',
      15,
      '15',
      'a Go duration string such as "15s", "2m" or "1h30m" (write the unit: go-zero reads a bare number as nanoseconds, this plugin as milliseconds)',
    ],
  ])('%s: %p', (key, value, shown, expected) => {
    const error = thrown(() => map({ ServerAddr: 'http://p:4040', [key]: value }));
    expect(error.option).toBe(`Profiling.${key}`);
    expect(error.message).toBe(`Invalid option "Profiling.${key}": got ${shown}; expected ${expected}`);
  });

  test('a wrong AuthPassword type is reported without its value', () => {
    const error = thrown(() => map({ ServerAddr: 'http://p:4040', AuthPassword: 123456 }));
    expect(error.message).toBe('Invalid option "Profiling.AuthPassword": got \'***\'; expected a string (quote it in YAML if it looks like a number or a boolean)');
    expect(error.message).not.toContain('123456');
  });

  test.each([['CPU'], ['Memory'], ['Goroutines'], ['Mutex'], ['Block'], ['Logger']])('ProfileType.%s must be a boolean', (key) => {
    const error = thrown(() => map({ ServerAddr: 'http://p:4040', ProfileType: { [key]: 'yes' } }));
    expect(error.message).toBe(`Invalid option "Profiling.ProfileType.${key}": got "yes"; expected true or false`);
  });

  test('ProfileType must be a mapping', () => {
    const error = thrown(() => map({ ServerAddr: 'http://p:4040', ProfileType: ['CPU'] }));
    expect(error.message).toBe('Invalid option "Profiling.ProfileType": got ["CPU"]; expected a mapping of keys to values');
  });

  test('the Profiling block itself must be a mapping', () => {
    const error = thrown(() => map('http://p:4040'));
    expect(error.message).toBe('Invalid option "Profiling": got "http://p:4040"; expected a mapping of keys to values');
  });

  test('a missing service name is an error when the block has none', () => {
    const error = thrown(() => fromGoZeroConfig({ ServerAddr: 'http://p:4040' }, { name: '' }));
    expect(error.message).toBe('Invalid option "Name": got ""; expected the service\'s Name: a non-empty string (it becomes the Pyroscope application name)');
  });
});

describe('fromGoZeroConfig: what it produces is what the plugin accepts', () => {
  const noEnv = {};

  test("the walkthrough block resolves to go-zero's values, durations in milliseconds", () => {
    const resolved = resolveOptions(
      map({
        ServerAddr: 'https://pyroscope.example:4040',
        CpuThreshold: 0,
        CheckInterval: '10s',
        ProfilingDuration: '2m',
        UploadDuration: '15s',
        AuthUser: 'alice',
        AuthPassword: 's3cret',
        ProfileType: { CPU: true, Memory: false, Goroutines: true },
      }),
      noEnv,
    );
    expect(resolved).toMatchObject({
      enabled: true,
      appName: 'greet',
      serverAddress: 'https://pyroscope.example:4040',
      cpuThreshold: 0,
      checkInterval: 10_000,
      profilingDuration: 120_000,
      uploadRate: 15_000,
      basicAuthUser: 'alice',
      basicAuthPassword: 's3cret',
      profileTypes: { cpu: true, wall: false, heap: false },
    });
  });

  test("keys left out get the plugin's defaults, which are go-zero's", () => {
    const resolved = resolveOptions(map({ ServerAddr: 'http://localhost:4040' }), noEnv);
    expect(resolved).toMatchObject({
      cpuThreshold: 700,
      checkInterval: 10_000,
      profilingDuration: 120_000,
      uploadRate: 15_000,
      profileTypes: { cpu: true, wall: false, heap: true },
    });
  });

  test('ServerAddr empty: the plugin registers disabled; with outputDir it records to files', () => {
    expect(resolveOptions(map({ ServerAddr: '' }), noEnv).enabled).toBe(false);
    const toFiles = resolveOptions(map({ ServerAddr: '' }, { outputDir: 'profiles' }), noEnv);
    expect(toFiles).toMatchObject({ enabled: true, outputDir: 'profiles' });
    expect(toFiles.serverAddress).toBeUndefined();
  });

  test('a range go-zero also refuses is refused by the plugin, naming its option', () => {
    expect(() => resolveOptions(map({ ServerAddr: 'http://localhost:4040', CpuThreshold: 1500 }), noEnv)).toThrow(
      'Invalid option "cpuThreshold": got 1500; expected an integer from 0 to 1000',
    );
  });

  test("the example's etc/greet.yaml maps, with and without PYROSCOPE_SERVER_ADDRESS", () => {
    const file = `${__dirname}/../example-app/etc/greet.yaml`;

    const withServer = loadConfig(file, { PYROSCOPE_SERVER_ADDRESS: 'http://localhost:4040' });
    const mapped = map(withServer.Profiling, {});
    expect(mapped).toEqual({
      appName: 'greet',
      serverAddress: 'http://localhost:4040',
      cpuThreshold: 0,
      checkInterval: '10s',
      profilingDuration: '2m',
      uploadRate: '15s',
      profileTypes: { cpu: true, heap: true },
    });
    expect(resolveOptions(mapped, noEnv).uploadRate).toBe(15_000);

    const withoutServer = loadConfig(file, {});
    expect(map(withoutServer.Profiling, { outputDir: 'out' })).not.toHaveProperty('serverAddress');
    expect(map(withoutServer.Profiling)).toMatchObject({ enabled: false });
  });
});
