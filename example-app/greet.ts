/**
 * The greet service (go-zero's `goctl quickstart -t mono`, on Fastify), with continuous profiling
 * configured by go-zero's `Profiling:` block.
 *
 *   greet [-f etc/greet.yaml] [--port N] [--output-dir DIR]
 *
 * Environment: GREET_PORT, GREET_OUTPUT_DIR (same as the flags; flags win),
 * GREET_SIMULATE_CPU_LOAD=0|1 (overrides SimulateCPULoad), PYROSCOPE_SERVER_ADDRESS (used by
 * etc/greet.yaml as ${PYROSCOPE_SERVER_ADDRESS}).
 *
 * Prints `Starting server at HOST:PORT...` once listening (the real port, also with --port 0),
 * and on SIGINT/SIGTERM closes the server, which ends the profiling session and writes or uploads
 * its last window, then prints `greet stopped, profiler stats: {...}`.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { parseArgs } from 'node:util';
// In an application: from 'fastify-continuous-profiling'.
import profilingPlugin, { fromGoZeroConfig } from '../src';
import { loadConfig, pinoLevel, type Config } from './internal/config/config';
import { registerHandlers } from './internal/handler/routes';
import { newServiceContext } from './internal/svc/servicecontext';

export interface GreetOptions {
  /** also write every profile window to this directory */
  outputDir?: string;
}

/** What the command line and the environment can change in the loaded config. */
export interface Overrides {
  port?: number;
  simulateCPULoad?: boolean;
  outputDir?: string;
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
    fromGoZeroConfig(config.Profiling as Parameters<typeof fromGoZeroConfig>[0], {
      name: config.Name,
      logger: server.log,
      outputDir: options.outputDir,
    }),
  );
  registerHandlers(server, newServiceContext(config));
  return server;
}

export function applyOverrides(config: Config, overrides: Overrides): Config {
  return {
    ...config,
    Port: overrides.port ?? config.Port,
    SimulateCPULoad: overrides.simulateCPULoad ?? config.SimulateCPULoad,
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
  const server = await buildGreet(config, { outputDir: commandLine.outputDir });
  closeOnSignals(server);
  await server.listen({ host: config.Host, port: config.Port });
  console.log(`Starting server at ${config.Host}:${listeningPort(server)}...`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(`greet: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
