/**
 * The greet service (go-zero's `goctl quickstart -t mono`, on Fastify), with continuous profiling
 * configured by go-zero's `Profiling:` block.
 *
 *   greet [-f etc/greet.yaml] [--port N] [--output-dir DIR]
 *
 * Environment: GREET_PORT, GREET_OUTPUT_DIR (same as the flags; flags win),
 * GREET_SIMULATE_CPU_LOAD=0|1 (overrides SimulateCPULoad), GREET_SIMULATE_MEMORY_LEAK=0|1
 * (overrides SimulateMemoryLeak), PYROSCOPE_SERVER_ADDRESS (used by etc/greet.yaml as
 * ${PYROSCOPE_SERVER_ADDRESS}). GREET_HEAP_THRESHOLD sets a plugin option go-zero's block has no
 * key for: profile when the V8 heap passes a threshold instead of on CPU (per mille of the heap
 * limit, or `+16MiB`: that much above the heap in use once greet has started).
 *
 * Prints `Starting server at HOST:PORT...` once listening (the real port, also with --port 0),
 * and on SIGINT/SIGTERM closes the server, which ends the profiling session and writes or uploads
 * its last window, then prints `greet stopped, profiler stats: {...}`.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { parseArgs } from 'node:util';
import { getHeapStatistics } from 'node:v8';
// In an application: from 'fastify-continuous-profiling'.
import profilingPlugin, { fromGoZeroConfig } from '../src';
import { loadConfig, pinoLevel, type Config } from './internal/config/config';
import { registerHandlers } from './internal/handler/routes';
import { newServiceContext } from './internal/svc/servicecontext';

export interface GreetOptions {
  /** also write every profile window to this directory */
  outputDir?: string;
  /** profile when the V8 heap passes this per mille of its limit, instead of on CPU */
  heapThreshold?: number;
}

/** What the command line and the environment can change in the loaded config. */
export interface Overrides {
  /** GREET_HEAP_THRESHOLD: per mille, or `+<N>MiB` above the heap in use at start */
  heapThreshold?: string;
  port?: number;
  simulateCPULoad?: boolean;
  simulateMemoryLeak?: boolean;
  outputDir?: string;
}

const MiB = 1024 * 1024;

/**
 * GREET_HEAP_THRESHOLD as the plugin's heapThreshold (per mille of V8's heap limit). `+32MiB`
 * is read against this process's heap: the limit differs by Node version and flags (its young
 * generation's reserve alone is 48 to 192 MiB), so a fixed per mille would mean another amount of
 * leaked memory on each.
 */
export function heapThresholdOf(spec: string, heap = getHeapStatistics()): number {
  const above = /^\+(\d+)MiB$/.exec(spec);
  if (above) return Math.min(1000, Math.ceil(((heap.used_heap_size + Number(above[1]) * MiB) / heap.heap_size_limit) * 1000));
  const perMille = Number(spec);
  if (/^\d+$/.test(spec) && perMille >= 1 && perMille <= 1000) return perMille;
  throw new Error(`GREET_HEAP_THRESHOLD is "${spec}"; expected a per mille from 1 to 1000 or +<N>MiB (e.g. +16MiB)`);
}

/** The plugin options greet's own variables set, on top of the Profiling block's. */
function profilingOverrides(options: GreetOptions): { heapThreshold?: number; cpuThreshold?: false } {
  // a heap trigger instead of the CPU one: the session the leak starts, not one from the start
  return options.heapThreshold !== undefined ? { heapThreshold: options.heapThreshold, cpuThreshold: false } : {};
}

/**
 * Per-request log lines at debug instead of info (errors stay at error): at info, thousands of
 * lines a second would put pino next to simulateCPULoad in the flame graph, where go-zero's
 * walkthrough shows only the handler and JSON serialization once the loop is gone.
 */
class AccessLogAtDebug extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) reply.log.error({ res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored');
    else reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }
}

/** The service, ready to listen: routes and the profiling plugin registered. */
export async function buildGreet(config: Config, options: GreetOptions = {}): Promise<FastifyInstance> {
  const server = Fastify({
    logger: { level: pinoLevel(config.Log.Level) },
    logController: new AccessLogAtDebug(),
  });
  await server.register(
    profilingPlugin,
    {
      ...fromGoZeroConfig(config.Profiling as Parameters<typeof fromGoZeroConfig>[0], {
        name: config.Name,
        logger: server.log,
        outputDir: options.outputDir,
      }),
      ...profilingOverrides(options),
    },
  );
  registerHandlers(server, newServiceContext(config));
  return server;
}

export function applyOverrides(config: Config, overrides: Overrides): Config {
  return {
    ...config,
    Port: overrides.port ?? config.Port,
    SimulateCPULoad: overrides.simulateCPULoad ?? config.SimulateCPULoad,
    SimulateMemoryLeak: overrides.simulateMemoryLeak ?? config.SimulateMemoryLeak,
  };
}

/** Flags first, then GREET_* variables. Throws a message naming the bad flag or variable. */
export function readCommandLine(argv: string[], env: NodeJS.ProcessEnv): { configFile: string } & Overrides {
  const { values } = parseArgs({
    args: argv,
    options: {
      f: { type: 'string', short: 'f', default: 'etc/greet.yaml' },
      port: { type: 'string' },
      'output-dir': { type: 'string' },
    },
    strict: true,
  });
  const portText = values.port ?? env.GREET_PORT;
  return {
    configFile: values.f as string,
    port: portText === undefined || portText === '' ? undefined : portNumber(portText, values.port !== undefined ? '--port' : 'GREET_PORT'),
    outputDir: nonEmpty(values['output-dir']) ?? nonEmpty(env.GREET_OUTPUT_DIR),
    simulateCPULoad: switchValue(env.GREET_SIMULATE_CPU_LOAD, 'GREET_SIMULATE_CPU_LOAD'),
    simulateMemoryLeak: switchValue(env.GREET_SIMULATE_MEMORY_LEAK, 'GREET_SIMULATE_MEMORY_LEAK'),
    heapThreshold: nonEmpty(env.GREET_HEAP_THRESHOLD),
  };
}

function portNumber(text: string, source: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) throw new Error(`${source} is "${text}"; expected a port number from 0 to 65535`);
  return port;
}

function switchValue(text: string | undefined, source: string): boolean | undefined {
  if (text === undefined || text === '') return undefined;
  if (text === '1' || text === 'true') return true;
  if (text === '0' || text === 'false') return false;
  throw new Error(`${source} is "${text}"; expected 0 or 1`);
}

function nonEmpty(text: string | undefined): string | undefined {
  return text === undefined || text === '' ? undefined : text;
}

/** Close once on SIGINT/SIGTERM (a second signal exits at once), then exit. */
function closeOnSignals(server: FastifyInstance): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing) {
      console.error(`greet: ${signal} again, exiting without waiting`);
      process.exit(1);
    }
    closing = true;
    server.log.info({ signal }, 'shutting down');
    server.close().then(
      () => {
        console.log(`greet stopped, profiler stats: ${JSON.stringify(server.profiler.stats())}`);
        process.exit(0);
      },
      (error: unknown) => {
        console.error('greet: close failed:', error);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** The port actually bound (differs from the config's with port 0). */
function listeningPort(server: FastifyInstance): number {
  const address = server.server.address();
  if (address === null || typeof address === 'string') throw new Error(`greet: not listening on a TCP port (${String(address)})`);
  return address.port;
}

export async function main(argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const commandLine = readCommandLine(argv, env);
  const config = applyOverrides(loadConfig(commandLine.configFile, env), commandLine);
  const heapThreshold = commandLine.heapThreshold === undefined ? undefined : heapThresholdOf(commandLine.heapThreshold);
  const server = await buildGreet(config, {
    outputDir: commandLine.outputDir,
    ...(heapThreshold !== undefined ? { heapThreshold } : {}),
  });
  closeOnSignals(server);
  await server.listen({ host: config.Host, port: config.Port });
  if (heapThreshold !== undefined) {
    const limit = getHeapStatistics().heap_size_limit;
    console.log(`Heap trigger: a session starts when the V8 heap passes ${heapThreshold} per mille of its ${(limit / MiB).toFixed(0)} MiB limit (${((heapThreshold * limit) / 1000 / MiB).toFixed(0)} MiB)`);
  }
  console.log(`Starting server at ${config.Host}:${listeningPort(server)}...`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(`greet: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
