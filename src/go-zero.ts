/**
 * go-zero's `Profiling:` config block, mapped to this plugin's options.
 *
 * A go-zero service configures continuous profiling in its YAML (see go-zero's
 * `internal/profiling/profiling.go`). `fromGoZeroConfig` takes that block, already parsed into an
 * object, and returns options for `app.register(profilingPlugin, ...)`:
 *
 *   const config = YAML.parse(fs.readFileSync('etc/greet.yaml', 'utf8'));
 *   await app.register(profilingPlugin, fromGoZeroConfig(config.Profiling, { name: config.Name, logger: app.log }));
 *
 * It produces only what the block gives: the plugin's defaults equal go-zero's, so they apply to
 * every key left out. Keys are matched case-insensitively, as go-zero's config loader does.
 * Values are checked for type here (the error names the go-zero key); ranges and the duration
 * limits are checked by the plugin at registration, like for any other options.
 */
import { parseDuration } from './duration';
import { ProfilingOptionError } from './errors';
import type { ProfilingOptions } from './options';
import type { MinimalLogger } from './types';

/** go-zero's `ProfileType:` sub-block. */
export interface GoZeroProfileType {
  CPU?: boolean;
  Memory?: boolean;
  Goroutines?: boolean;
  Mutex?: boolean;
  Block?: boolean;
  /** go-zero: log the Pyroscope client's messages. This plugin always logs upload failures. */
  Logger?: boolean;
}

/**
 * go-zero's `Profiling:` block. Durations are Go duration strings as go-zero configs write them
 * (`'15s'`, `'2m'`, `'1h30m'`). A bare number is refused: go-zero reads it as nanoseconds and
 * this plugin as milliseconds, so its meaning would depend on who reads it.
 */
export interface GoZeroProfilingConfig {
  /** go-zero inherits it from the service's `Name:`; when given here, it wins. */
  Name?: string;
  ServerAddr?: string;
  CpuThreshold?: number;
  CheckInterval?: string;
  ProfilingDuration?: string;
  UploadRate?: string;
  /** the name go-zero's documentation uses for UploadRate (go-zero's code silently ignores it) */
  UploadDuration?: string;
  AuthUser?: string;
  AuthPassword?: string;
  ProfileType?: GoZeroProfileType;
}

export interface FromGoZeroConfigContext {
  /** the service's `Name:` (go-zero sends it as the application name) */
  name: string;
  /** receives the warnings for go-zero profile types Node.js lacks; process warnings otherwise */
  logger?: MinimalLogger;
  /**
   * Write every profile window to this directory too. With an empty `ServerAddr` go-zero turns
   * profiling off; with `outputDir` given, profiles are recorded to disk instead.
   */
  outputDir?: string;
}

/** The options `fromGoZeroConfig` can produce: a subset of the plugin's options. */
export type GoZeroMappedOptions = Pick<
  ProfilingOptions,
  | 'appName'
  | 'enabled'
  | 'serverAddress'
  | 'cpuThreshold'
  | 'checkInterval'
  | 'profilingDuration'
  | 'uploadRate'
  | 'basicAuthUser'
  | 'basicAuthPassword'
  | 'profileTypes'
  | 'outputDir'
>;

const BLOCK = 'Profiling';

/** Every key go-zero's Profiling config knows, in go-zero's spelling (plus the documented alias). */
const PROFILING_KEYS = [
  'Name',
  'ServerAddr',
  'CpuThreshold',
  'CheckInterval',
  'ProfilingDuration',
  'UploadRate',
  'UploadDuration',
  'AuthUser',
  'AuthPassword',
  'ProfileType',
] as const;

const PROFILE_TYPE_KEYS = ['CPU', 'Memory', 'Goroutines', 'Mutex', 'Block', 'Logger'] as const;

/** go-zero profile types with no Node.js counterpart, and why, for the warning. */
const UNSUPPORTED_PROFILE_TYPES = {
  Goroutines: 'Node.js has no goroutines (one JavaScript thread runs the event loop)',
  Mutex: 'Node.js has no mutex contention profile',
} as const;

type ProfilingKey = (typeof PROFILING_KEYS)[number];

/**
 * Map go-zero's `Profiling:` block to plugin options.
 *
 * - `ServerAddr` -> `serverAddress`. Empty or absent: go-zero turns profiling off, and so does
 *   this (`enabled: false`), unless `outputDir` is given, which records to files instead.
 * - `CpuThreshold` -> `cpuThreshold` (same unit: per mille; 0 = always on).
 * - `CheckInterval`, `ProfilingDuration`, `UploadRate` (alias `UploadDuration`) -> same names,
 *   passed as written; giving both `UploadRate` and `UploadDuration` with different values is an error.
 * - `AuthUser` / `AuthPassword` -> `basicAuthUser` / `basicAuthPassword`.
 * - `ProfileType.CPU` -> `profileTypes.cpu`, `ProfileType.Memory` -> `profileTypes.heap`,
 *   `ProfileType.Block` -> `profileTypes.wall` (logged once at info: Go's block profile is time
 *   spent waiting; in Node that is time the event loop is blocked or idle, which wall time shows);
 *   `Goroutines` and `Mutex` set to true log one warning each and are ignored.
 *
 * Throws `ProfilingOptionError` for an unknown key (naming it and listing the known ones) and for
 * a value of the wrong type (naming the key, the value and the expected type).
 */
export function fromGoZeroConfig(
  profiling: GoZeroProfilingConfig | null | undefined,
  context: FromGoZeroConfigContext,
): GoZeroMappedOptions {
  const block = readBlock(profiling ?? {}, BLOCK, PROFILING_KEYS);
  const warn = warner(context.logger);

  const options: GoZeroMappedOptions = {
    appName: appName(block, context.name),
    ...withoutUndefined({
      serverAddress: nonBlank(optionalString(block, 'ServerAddr')),
      cpuThreshold: optionalInteger(block, 'CpuThreshold'),
      checkInterval: optionalDuration(block, 'CheckInterval'),
      profilingDuration: optionalDuration(block, 'ProfilingDuration'),
      uploadRate: uploadRateOf(block),
      basicAuthUser: optionalString(block, 'AuthUser'),
      basicAuthPassword: optionalString(block, 'AuthPassword'),
      profileTypes: profileTypesOf(block, warn, (message, option) => context.logger?.info({ option }, message)),
      outputDir: context.outputDir,
    }),
  };
  if (options.serverAddress === undefined && options.outputDir === undefined) {
    // go-zero's own rule: no ServerAddr, no profiling. Said once, so it is not a silent no-op.
    options.enabled = false;
    context.logger?.info(
      { option: `${BLOCK}.ServerAddr` },
      `${BLOCK}.ServerAddr is empty: continuous profiling is off (as in go-zero); set it, or pass outputDir to record profiles to files`,
    );
  }
  return options;
}

/** A block's values under go-zero's spelling of each key, whatever case the YAML used. */
class Block<K extends string> {
  constructor(
    readonly path: string,
    private readonly values: Map<K, unknown>,
  ) {}

  /** The value, or undefined when absent or YAML null (`Key:` with nothing after it). */
  get(key: K): unknown {
    const value = this.values.get(key);
    return value === null ? undefined : value;
  }

  pathOf(key: K): string {
    return `${this.path}.${key}`;
  }
}

function readBlock<K extends string>(raw: unknown, path: string, known: readonly K[]): Block<K> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ProfilingOptionError(path, raw, 'a mapping of keys to values');
  }
  const byLowerCase = new Map<string, K>(known.map((key) => [key.toLowerCase(), key]));
  const values = new Map<K, unknown>();
  const writtenAs = new Map<K, string>();
  for (const [written, value] of Object.entries(raw)) {
    const key = byLowerCase.get(written.toLowerCase());
    if (key === undefined) {
      throw new ProfilingOptionError(`${path}.${written}`, value, `a known key (unknown key "${written}"; known: ${known.join(', ')})`);
    }
    const earlier = writtenAs.get(key);
    if (earlier !== undefined) {
      throw new ProfilingOptionError(`${path}.${written}`, value, `one spelling of the key: "${earlier}" already sets ${path}.${key} (keys are case-insensitive)`);
    }
    writtenAs.set(key, written);
    values.set(key, value);
  }
  return new Block(path, values);
}

function appName(block: Block<ProfilingKey>, serviceName: string): string {
  const own = optionalString(block, 'Name');
  if (own !== undefined && own !== '') return own;
  if (typeof serviceName !== 'string' || serviceName === '') {
    throw new ProfilingOptionError('Name', serviceName, "the service's Name: a non-empty string (it becomes the Pyroscope application name)");
  }
  return serviceName;
}

function optionalString<K extends string>(block: Block<K>, key: K): string | undefined {
  const value = block.get(key);
  if (value === undefined || typeof value === 'string') return value;
  throw new ProfilingOptionError(block.pathOf(key), value, 'a string (quote it in YAML if it looks like a number or a boolean)');
}

function optionalInteger<K extends string>(block: Block<K>, key: K): number | undefined {
  const value = block.get(key);
  if (value === undefined || (typeof value === 'number' && Number.isInteger(value))) return value;
  throw new ProfilingOptionError(block.pathOf(key), value, 'an integer (per mille: 700 = 70 % of the CPU available; 0 = always on)');
}

function optionalBoolean<K extends string>(block: Block<K>, key: K): boolean | undefined {
  const value = block.get(key);
  if (value === undefined || typeof value === 'boolean') return value;
  throw new ProfilingOptionError(block.pathOf(key), value, 'true or false');
}

/** A Go duration string, passed on as written; the plugin checks its range. */
function optionalDuration<K extends string>(block: Block<K>, key: K): string | undefined {
  const value = block.get(key);
  if (value === undefined) return undefined;
  if (typeof value === 'number') {
    throw new ProfilingOptionError(
      block.pathOf(key),
      value,
      'a Go duration string such as "15s", "2m" or "1h30m" (write the unit: go-zero reads a bare number as nanoseconds, this plugin as milliseconds)',
    );
  }
  if (typeof value !== 'string' || parseDuration(value) === undefined) {
    throw new ProfilingOptionError(block.pathOf(key), value, 'a Go duration string such as "500ms", "15s", "2m" or "1h30m"');
  }
  return value;
}

/** `UploadRate`, or its documented alias `UploadDuration`; both are fine only when they agree. */
function uploadRateOf(block: Block<ProfilingKey>): string | undefined {
  const rate = optionalDuration(block, 'UploadRate');
  const alias = optionalDuration(block, 'UploadDuration');
  if (rate !== undefined && alias !== undefined && parseDuration(rate) !== parseDuration(alias)) {
    throw new ProfilingOptionError(
      block.pathOf('UploadDuration'),
      alias,
      `the same duration as ${block.pathOf('UploadRate')} (${JSON.stringify(rate)}), or only one of the two: UploadDuration is another name for UploadRate`,
    );
  }
  return rate ?? alias;
}

function profileTypesOf(
  block: Block<ProfilingKey>,
  warn: (message: string, option: string) => void,
  info: (message: string, option: string) => void,
): GoZeroMappedOptions['profileTypes'] {
  const raw = block.get('ProfileType');
  if (raw === undefined) return undefined;
  const types = readBlock(raw, block.pathOf('ProfileType'), PROFILE_TYPE_KEYS);

  for (const key of Object.keys(UNSUPPORTED_PROFILE_TYPES) as (keyof typeof UNSUPPORTED_PROFILE_TYPES)[]) {
    if (optionalBoolean(types, key) === true) {
      warn(`${types.pathOf(key)}: ${UNSUPPORTED_PROFILE_TYPES[key]}; ignored`, types.pathOf(key));
    }
  }
  // Logger: this plugin logs upload failures whatever it says; accepted so go-zero configs load.
  optionalBoolean(types, 'Logger');

  const result: { cpu?: boolean; heap?: boolean; wall?: boolean } = {};
  const cpu = optionalBoolean(types, 'CPU');
  if (cpu !== undefined) result.cpu = cpu;
  const memory = optionalBoolean(types, 'Memory');
  if (memory !== undefined) result.heap = memory;
  const blocking = optionalBoolean(types, 'Block');
  if (blocking === true) {
    result.wall = true;
    info(
      `${types.pathOf('Block')}: mapped to profileTypes.wall (wall time shows where the event loop is blocked, Node's counterpart of Go's block profile)`,
      types.pathOf('Block'),
    );
  }
  return Object.keys(result).length > 0 ? result : undefined;
}

/** Only the keys that have a value: what was not given stays absent, so plugin defaults apply. */
function withoutUndefined<T extends object>(values: T): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined)) as Partial<T>;
}

function nonBlank(text: string | undefined): string | undefined {
  return text === undefined || text.trim() === '' ? undefined : text;
}

function warner(logger: MinimalLogger | undefined): (message: string, option: string) => void {
  if (logger) return (message, option) => logger.warn({ option }, message);
  // No logger: a process warning (printed on stderr by default) rather than nothing.
  return (message) => process.emitWarning(message, { code: 'FST_CONTINUOUS_PROFILING_GO_ZERO_UNSUPPORTED' });
}
