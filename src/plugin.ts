/**
 * Fastify glue only: options -> parts (createParts), the `app.profiler` decorator
 * (createDecorator), the hooks that drive the parts (addHooks), one registration per process.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { ProfilingController, type ControllerStats, type ProfilerState, type StartOptions } from './controller';
import { CpuUsageMeter } from './cpu-usage';
import { ProfilerAlreadyActiveError } from './errors';
import { FileExporter } from './exporters/file';
import { PyroscopeExporter } from './exporters/pyroscope';
import { InvalidLabelError, isWebSocketRoute, loadSpanProfiles, RequestLabels, routeProfilingConfigProblem, type LabelMode, type SpanProfiles, type SpanProfileStats } from './labels';
import { resolveOptions, type ProfilingOptions, type ResolvedOptions } from './options';
import { guardRegistrationLevel } from './registration';
import { EngineProfiler, FrameRewriter, SharedEngine } from './profilers';
import { PathCleaner } from './profilers/paths';
import { RuntimeSourceMaps } from './profilers/runtime-maps';
import { SourceMapWorker } from './profilers/source-map-client';
import { SourceMaps, type FrameSymbolizer, type SourceMapStats } from './profilers/source-maps';
import { ProfileCaptureError, PullMode, type CaptureOptions, type CaptureStats } from './pull';
import { NO_READINGS, createTriggers, memoryAvailable } from './triggers';
import type { Exporter, ExporterStats, MinimalLogger } from './types';
import { WorkerRelay, workerReplyTimeout, type TaskLabels, type WorkerStats } from './workers';

export interface ProfilerStats extends ControllerStats, SourceMapStats {
  enabled: boolean;
  /**
   * cpuUsage as of the last check, split: the main thread (the event loop's JavaScript) and the
   * other threads of the process (worker threads, GC helpers, libuv's pool); absent where the
   * main thread's own CPU time cannot be read (not Linux, before Node 22.19).
   */
  cpuUsageSplit?: { mainThread: number; otherThreads: number };
  labelMode?: LabelMode;
  labelValuesOverflowed: number;
  /** OpenTelemetry span profiles, when @opentelemetry/api loaded (see the spanProfiles option) */
  spanProfiles?: SpanProfileStats;
  uploadsOk: number;
  uploadsFailed: number;
  bytesSent: number;
  /** profiles lost (queue full, retries exhausted, refused by the server, close deadline) */
  dropped: number;
  pending: number;
  exporters: Record<string, ExporterStats>;
  /** pull captures (endpoints and capture()): done, running now, refused (bad arguments, busy, closing), failed */
  pull: CaptureStats;
  /** worker threads taking part (profileWorker()); absent with maxWorkers: 0 */
  workers?: WorkerStats;
}

/** The `app.profiler` decorator. */
export interface ProfilerDecorator {
  readonly state: ProfilerState;
  /** CPU usage in per mille of the CPU available, as of the last check (see README). */
  cpuUsage(): number;
  /** Start a session now (default length: profilingDuration). False when one runs already or profiling is disabled. */
  start(options?: StartOptions): boolean;
  /** End the running session and hand its last window to the exporters. */
  stop(): Promise<void>;
  stats(): ProfilerStats;
  /** Run `fn` with extra labels on its CPU/wall samples (and everything it awaits). */
  withLabels<T>(labels: Record<string, string>, fn: () => T): T;
  /**
   * The current request's labels as a plain object to send with a task to a worker thread, where
   * `withTaskLabels(labels, fn)` (fastify-continuous-profiling/worker) runs the task under them;
   * undefined outside a request or when no session samples.
   */
  taskLabels(): TaskLabels | undefined;
  /**
   * One profile over the next `seconds` (default 30; heap: see README) as gzipped pprof, read
   * from the running profiler when a session runs. Rejects with a ProfileCaptureError.
   */
  capture(options: CaptureOptions): Promise<Buffer>;
  /** Base URL of the /debug/pprof endpoints once they listen; undefined before and when off. */
  readonly pprofUrl: string | undefined;
}

declare module 'fastify' {
  interface FastifyInstance {
    profiler: ProfilerDecorator;
  }
}

/** One time profiler per process: the active registration holds this slot until it closes. */
const ACTIVE = Symbol.for('fastify-continuous-profiling.active');
type GlobalWithSlot = typeof globalThis & { [ACTIVE]?: string };

function claimProcessSlot(appName: string): () => void {
  const g = globalThis as GlobalWithSlot;
  if (g[ACTIVE] !== undefined) {
    throw new ProfilerAlreadyActiveError(
      `fastify-continuous-profiling is already active in this process for app "${g[ACTIVE]}" (V8 has one time profiler per isolate); close that Fastify instance before registering another`,
    );
  }
  g[ACTIVE] = appName;
  let released = false;
  return () => {
    if (!released && g[ACTIVE] === appName) delete g[ACTIVE];
    released = true;
  };
}

function createExporters(o: ResolvedOptions, logger: MinimalLogger): Exporter[] {
  const exporters: Exporter[] = [];
  if (o.serverAddress !== undefined) {
    exporters.push(
      new PyroscopeExporter({
        serverAddress: o.serverAddress,
        appName: o.appName,
        tags: o.tags,
        authToken: o.authToken,
        basicAuthUser: o.basicAuthUser,
        basicAuthPassword: o.basicAuthPassword,
        tenantID: o.tenantID,
        headers: o.headers,
        uploadTimeoutMs: o.uploadTimeout,
        maxUploadRetries: o.maxUploadRetries,
        maxPendingUploads: o.maxPendingUploads,
        maxPendingBytes: o.maxPendingBytes,
        logger,
      }),
    );
  }
  if (o.outputDir !== undefined) {
    exporters.push(new FileExporter({ dir: o.outputDir, appName: o.appName, maxFiles: o.maxOutputFiles, maxBytes: o.maxOutputBytes, logger }));
  }
  return exporters;
}

function sumExporterStats(exporters: readonly Exporter[]): Pick<ProfilerStats, 'uploadsOk' | 'uploadsFailed' | 'bytesSent' | 'dropped' | 'pending' | 'exporters' | 'lastError'> {
  const total = { uploadsOk: 0, uploadsFailed: 0, bytesSent: 0, dropped: 0, pending: 0, exporters: {} as Record<string, ExporterStats>, lastError: undefined as string | undefined };
  for (const exporter of exporters) {
    const s = exporter.stats();
    total.uploadsOk += s.uploadsOk;
    total.uploadsFailed += s.uploadsFailed;
    total.bytesSent += s.bytesSent;
    total.dropped += s.dropped;
    total.pending += s.pending;
    total.exporters[exporter.name] = s;
    // an upload failure is a last error too (already scrubbed of credentials by the exporter)
    if (s.lastError !== undefined) total.lastError ??= `${exporter.name}: ${s.lastError}`;
  }
  return total;
}

const PLUGIN_NAME = 'fastify-continuous-profiling';

const continuousProfiling: FastifyPluginAsync<ProfilingOptions> = async (app: FastifyInstance, rawOptions) => {
  // before anything else, enabled or not: a level that cannot label every route fails in development
  let releaseSlot = (): void => undefined;
  guardRegistrationLevel(app, PLUGIN_NAME, () => releaseSlot());
  const options = resolveOptions(rawOptions);
  const logger = app.log as MinimalLogger;

  if (!options.enabled) {
    app.decorate('profiler', disabledProfiler());
    return;
  }

  releaseSlot = claimProcessSlot(options.appName);
  try {
    const parts = await createParts(options, logger);
    app.decorate('profiler', createDecorator(parts));
    addHooks(app, parts, options, releaseSlot);
  } catch (error) {
    releaseSlot();
    throw error;
  }
};

/** What one registration runs on, built from the options. */
interface Parts {
  /** whether requests are labelled: CPU or wall samples may be taken */
  labelsWanted: boolean;
  labels: RequestLabels;
  spans?: SpanProfiles;
  /** the CPU meter, for stats().cpuUsageSplit */
  usage: CpuUsageMeter;
  exporters: Exporter[];
  sourceMaps?: FrameSymbolizer;
  controller: ProfilingController;
  pull: PullMode;
  /** worker threads' side of the engine; undefined with maxWorkers: 0 */
  workers?: WorkerRelay;
}

async function createParts(options: ResolvedOptions, logger: MinimalLogger): Promise<Parts> {
  // an event-loop session collects wall time with route labels whatever profileTypes says
  const labelsWanted =
    options.profileTypes.cpu || options.profileTypes.wall || options.eventLoopThreshold !== false || options.pprofEndpoints !== undefined;
  // @opentelemetry/api is required here only when spanProfiles is not false (optional peer)
  const spans = labelsWanted ? loadSpanProfiles({ setting: options.spanProfiles, warn: (message) => logger.warn(message) }) : undefined;
  const labels = new RequestLabels({
    ...options.labels,
    maxLabelValues: options.maxLabelValues,
    maxLabelsPerSample: options.maxLabelsPerSample,
    spans,
    info: (fields, message) => logger.info(fields, message),
  });
  const usage = new CpuUsageMeter();
  await usage.init();
  const triggers = createTriggers(options, usage, await memoryAvailable());
  const exporters = createExporters(options, logger);
  const sourceMaps = options.sourceMaps ? createSourceMaps(logger) : undefined;
  const frames = new FrameRewriter(new PathCleaner({ root: options.root, absolutePaths: options.absolutePaths }), sourceMaps);
  // One engine for the push session and pull captures (src/profilers/shared-engine.ts). CPU
  // time is always recorded and the engine always gets the labeler (the engine needs contexts
  // for CPU time): a capture may ask for either view.
  const workers = options.maxWorkers === 0 ? undefined : createWorkerRelay(options, frames.wantsColumns, logger);
  const engine = new SharedEngine({
    threads: workers,
    sampleRate: options.sampleRate,
    heapSamplingInterval: options.heapSamplingInterval,
    collectCpuTime: true,
    windowMs: options.uploadRate,
    labeler: labels,
    frameColumns: frames.wantsColumns,
  });
  const profiler = new EngineProfiler({
    sampleRate: options.sampleRate,
    heapSamplingInterval: options.heapSamplingInterval,
    profileTypes: options.profileTypes,
    windowMs: options.uploadRate,
    engine,
    heapBetweenSessions: options.heapThreshold !== false || options.memoryThreshold !== false,
    frames,
  });
  const controller = new ProfilingController({ options, triggers, profiler, exporters, logger });
  const pull = new PullMode({ engine, endpoints: options.pprofEndpoints, sampleRate: options.sampleRate, logger, frames });
  return { labelsWanted, labels, spans, usage, exporters, sourceMaps, controller, pull, workers };
}

function createWorkerRelay(o: ResolvedOptions, frameColumns: boolean, logger: MinimalLogger): WorkerRelay {
  return new WorkerRelay({
    maxWorkers: o.maxWorkers,
    replyTimeoutMs: workerReplyTimeout(o.flushTimeout),
    heapIntervalBytes: o.heapSamplingInterval,
    settings: { sampleRate: o.sampleRate, collectCpuTime: true, windowMs: o.uploadRate, maxLabelValues: o.maxLabelValues, maxLabelsPerSample: o.maxLabelsPerSample, frameColumns },
    logger,
  });
}

function createDecorator({ controller, labels, spans, usage, exporters, sourceMaps, pull, workers }: Parts): ProfilerDecorator {
  const decorator: ProfilerDecorator & { toJSON(): ProfilerStats } = {
    get state() {
      return controller.state;
    },
    cpuUsage: () => controller.stats().cpuUsage,
    start: (startOptions) => controller.start(startOptions),
    stop: () => controller.stop(),
    stats: () => {
      const engine = controller.stats();
      const exported = sumExporterStats(exporters);
      return {
        enabled: true,
        labelMode: labels.mode,
        labelValuesOverflowed: labels.stats().overflowedValues,
        ...(spans === undefined ? {} : { spanProfiles: spans.stats() }),
        ...engine,
        ...(usage.lastSplit === undefined ? {} : { cpuUsageSplit: { ...usage.lastSplit } }),
        ...(sourceMaps?.stats() ?? NO_SOURCE_MAPS),
        ...exported,
        lastError: engine.lastError ?? exported.lastError,
        pull: pull.captures.stats(),
        ...(workers === undefined ? {} : { workers: workers.stats() }),
      };
    },
    withLabels: (extra, fn) => labels.withLabels(extra, fn),
    taskLabels: () => labels.taskLabels(),
    capture: (captureOptions) => pull.captures.capture(captureOptions),
    get pprofUrl() {
      return pull.url;
    },
    // JSON.stringify(app.profiler) shows the stats, never the options (credentials)
    toJSON: () => decorator.stats(),
  };
  return decorator;
}

function addHooks(app: FastifyInstance, parts: Parts, options: ResolvedOptions, releaseSlot: () => void): void {
  const { labelsWanted, labels, spans, sourceMaps, controller, pull, workers } = parts;
  if (labelsWanted) app.addHook('onRequest', labels.onRequest);
  pull.registerRoutes(app);
  // The second look for a span (see onPreHandler) is needed only when a tracer provider is
  // registered (OpenTelemetry wants it registered before the app is built) and no tracer that
  // starts its request span in a hook (@fastify/otel, which decorates request.opentelemetry)
  // is registered yet: registered before us, its span is active in our onRequest already, and
  // it would wrap a preHandler of ours in one more span per request. An app with
  // @opentelemetry/api installed but no tracing pays no extra hook.
  if (spans !== undefined && spans.providerRegistered() && !app.hasRequestDecorator('opentelemetry')) {
    app.addHook('preHandler', labels.onPreHandler);
  }
  // A bad `config.profiling` fails where the route is declared, not on its first request.
  app.addHook('onRoute', (route) => {
    const where = `config.profiling of route ${String(route.method)} ${route.url}`;
    const problem = routeProfilingConfigProblem(where, (route.config as { profiling?: unknown } | undefined)?.profiling);
    if (problem !== undefined) throw new InvalidLabelError(problem);
    // websocket routes only: their messages run under the upgrade request's labels (labels/websocket.ts)
    if (labelsWanted && isWebSocketRoute(route)) route.onRequest = [...hooksOf(route.onRequest), labels.onWebSocketRequest];
  });
  app.addHook('onReady', async () => {
    await controller.ready();
    await pull.ready();
  });
  app.addHook('onListen', async () => {
    pull.onListen(app);
  });
  // preClose: before Fastify waits for requests in flight, so a running capture ends now
  app.addHook('preClose', async () => {
    await pull.close(options.flushTimeout);
  });
  app.addHook('onClose', async () => {
    try {
      await pull.close(options.flushTimeout); // a no-op after preClose
      await controller.close();
    } finally {
      labels.releaseSockets();
      workers?.close();
      await sourceMaps?.close();
      releaseSlot();
    }
  });
}

/** A route's own hooks of one kind as a list (Fastify takes a function or an array). */
function hooksOf<T>(hooks: T | T[] | undefined): T[] {
  if (hooks === undefined) return [];
  return Array.isArray(hooks) ? hooks : [hooks];
}

/** Maps are parsed on a worker thread; in-thread only when running from the TypeScript sources (tests). */
function createSourceMaps(logger: MinimalLogger): FrameSymbolizer {
  return SourceMapWorker.available() ? new SourceMapWorker({ logger }) : new SourceMaps({ logger, runtime: new RuntimeSourceMaps(logger) });
}

const NO_SOURCE_MAPS: SourceMapStats = { sourceMapErrors: 0, sourceMapsCached: 0, sourceMapCacheBytes: 0 };

/** `enabled: false`: the decorator exists (so code calling it keeps working) and does nothing. */
function disabledProfiler(): ProfilerDecorator {
  const stats: ProfilerStats = {
    enabled: false,
    state: 'idle',
    ...NO_READINGS,
    sessionsHeldBack: { cooldown: 0, hourlyLimit: 0 },
    labelValuesOverflowed: 0,
    sessions: 0,
    windows: 0,
    profilesCollected: 0,
    samplesFolded: 0,
    samplerRestarts: 0,
    engineErrors: 0,
    ...NO_SOURCE_MAPS,
    uploadsOk: 0,
    uploadsFailed: 0,
    bytesSent: 0,
    dropped: 0,
    pending: 0,
    exporters: {},
    pull: { captures: 0, capturesRunning: 0, capturesRefused: 0, capturesFailed: 0 },
  };
  return {
    state: 'idle',
    cpuUsage: () => 0,
    start: () => false,
    stop: async () => undefined,
    stats: () => ({ ...stats, sessionsHeldBack: { ...stats.sessionsHeldBack }, pull: { ...stats.pull } }),
    withLabels: (_labels, fn) => fn(),
    taskLabels: () => undefined,
    capture: () => Promise.reject(new ProfileCaptureError('profiling is disabled (enabled: false)', 503)),
    pprofUrl: undefined,
  };
}

export const fastifyContinuousProfiling = fp(continuousProfiling, {
  name: PLUGIN_NAME,
  fastify: '5.x',
});
