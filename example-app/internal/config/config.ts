/**
 * The service's configuration (go-zero's config.Config), loaded from etc/greet.yaml.
 *
 * As go-zero's `conf.MustLoad(file, &c, conf.UseEnv())`: `${VAR}` and `$VAR` in the file are
 * replaced by environment variables (unset = empty) before the YAML is parsed.
 * The `Profiling:` block is kept as parsed: `fromGoZeroConfig` checks and maps it.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

/** go-zero's log levels, and the pino level each becomes. */
const LOG_LEVELS = { debug: 'debug', info: 'info', error: 'error', severe: 'fatal' } as const;
export type LogLevel = keyof typeof LOG_LEVELS;

export interface Config {
  Name: string;
  Host: string;
  Port: number;
  Log: { Level: LogLevel };
  /** run simulateCPULoad() in the ping logic */
  SimulateCPULoad: boolean;
  /** keep a record of every ping, forever (retainPingRecord): the memory-leak scenario */
  SimulateMemoryLeak: boolean;
  /** go-zero's Profiling block, unchecked here */
  Profiling?: unknown;
}

const KNOWN_KEYS = ['Name', 'Host', 'Port', 'Log', 'SimulateCPULoad', 'SimulateMemoryLeak', 'Profiling'];

export class ConfigError extends Error {
  constructor(file: string, key: string, value: unknown, expected: string) {
    super(`${file}: ${key} is ${JSON.stringify(value) ?? 'missing'}; expected ${expected}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const text = expandEnv(readFileSync(file, 'utf8'), env);
  return checkConfig(file, parse(text) as unknown);
}

/** Go's os.ExpandEnv: `${NAME}` or `$NAME` becomes the variable's value, or '' when unset. */
export function expandEnv(text: string, env: NodeJS.ProcessEnv): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_match, braced?: string, bare?: string) => {
    return env[(braced ?? bare) as string] ?? '';
  });
}

/** pino's name for a go-zero log level. */
export function pinoLevel(level: LogLevel): string {
  return LOG_LEVELS[level];
}

function checkConfig(file: string, raw: unknown): Config {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(file, 'the document', raw, 'a YAML mapping');
  }
  const doc = raw as Record<string, unknown>;
  for (const key of Object.keys(doc)) {
    if (!KNOWN_KEYS.includes(key)) throw new ConfigError(file, key, doc[key], `no such key (known: ${KNOWN_KEYS.join(', ')})`);
  }
  return {
    Name: nonEmptyString(file, 'Name', doc.Name),
    Host: nonEmptyString(file, 'Host', doc.Host),
    Port: port(file, doc.Port),
    Log: { Level: logLevel(file, doc.Log) },
    SimulateCPULoad: booleanOr(file, 'SimulateCPULoad', doc.SimulateCPULoad, false),
    SimulateMemoryLeak: booleanOr(file, 'SimulateMemoryLeak', doc.SimulateMemoryLeak, false),
    Profiling: doc.Profiling ?? undefined,
  };
}

function nonEmptyString(file: string, key: string, value: unknown): string {
  if (typeof value === 'string' && value !== '') return value;
  throw new ConfigError(file, key, value, 'a non-empty string');
}

function port(file: string, value: unknown): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 65535) return value;
  throw new ConfigError(file, 'Port', value, 'a port number from 0 to 65535 (0 = any free port)');
}

function logLevel(file: string, log: unknown): LogLevel {
  if (log === undefined || log === null) return 'info';
  const level = (log as { Level?: unknown }).Level ?? 'info';
  if (typeof level === 'string' && Object.prototype.hasOwnProperty.call(LOG_LEVELS, level)) return level as LogLevel;
  throw new ConfigError(file, 'Log.Level', level, `one of ${Object.keys(LOG_LEVELS).join(', ')}`);
}

function booleanOr(file: string, key: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'boolean') return value;
  throw new ConfigError(file, key, value, 'true or false');
}
