/**
 * Pull mode: `app.profiler.capture()` always, and the /debug/pprof endpoints when
 * `pprofEndpoints` is set. The plugin glue calls ready/onListen/close; everything else is here.
 */
import type { FastifyInstance } from 'fastify';
import type { FrameRewriter } from '../profilers/frames';
import type { SharedEngine } from '../profilers';
import type { MinimalLogger } from '../types';
import { Captures } from './capture';
import { PprofListener, hostForUrl, registerPprofRoutes } from './endpoints';
import { PPROF_DEFAULTS, type ResolvedPprofEndpoints } from './options';

export { Captures, MAX_CONCURRENT_CAPTURES, ProfileCaptureError, type CaptureOptions, type CaptureStats, type CaptureType } from './capture';
export { PPROF_DEFAULTS, resolvePprofEndpoints, type PprofAppEndpoints, type PprofAuthorize, type PprofEndpointsOptions, type PprofListenEndpoints, type ResolvedPprofEndpoints } from './options';

export interface PullModeDeps {
  engine: SharedEngine;
  endpoints?: ResolvedPprofEndpoints;
  sampleRate: number;
  logger: MinimalLogger;
  /** the push profiles' source maps and clean file names, applied to captures too */
  frames?: FrameRewriter;
}

export class PullMode {
  readonly captures: Captures;
  private readonly listener?: PprofListener;
  private appUrl?: string;
  private holdsHeap = false;

  constructor(private readonly deps: PullModeDeps) {
    this.captures = new Captures({
      engine: deps.engine,
      maxSeconds: deps.endpoints?.maxSeconds ?? PPROF_DEFAULTS.maxSeconds,
      sampleRate: deps.sampleRate,
      logger: deps.logger,
      frames: deps.frames,
    });
    if (deps.endpoints?.form === 'listen') this.listener = new PprofListener(this.captures, deps.endpoints, deps.logger);
  }

  /** The endpoints' base URL once they listen; undefined before, after close and when off. */
  get url(): string | undefined {
    return this.listener?.url ?? this.appUrl;
  }

  /** The app form's routes: at registration, like any route. */
  registerRoutes(app: FastifyInstance): void {
    if (this.deps.endpoints?.form === 'app') registerPprofRoutes(app, this.captures, this.deps.endpoints, this.deps.logger);
  }

  /**
   * At ready: with endpoints on, the heap sampler runs from now until close, so /heap shows
   * what is live as Go's always-on heap sampling does (a failure is logged: /heap then samples
   * for `seconds` on demand); the listener form starts listening.
   */
  async ready(): Promise<void> {
    if (this.deps.endpoints === undefined) return;
    try {
      this.deps.engine.heap.acquire();
      this.holdsHeap = true;
    } catch (error) {
      this.deps.logger.error({ err: error instanceof Error ? error.message : String(error) }, 'continuous profiling: the heap sampler for the pprof endpoints could not start');
    }
    await this.listener?.start();
  }

  /** The app form's URL, from the address the app listens on. */
  onListen(app: FastifyInstance): void {
    const endpoints = this.deps.endpoints;
    if (endpoints?.form !== 'app') return;
    const address = app.server.address();
    if (address === null || typeof address === 'string') return;
    this.appUrl = `http://${hostForUrl(address.address)}:${address.port}${endpoints.prefix}`;
  }

  /** Ends running captures (they answer what they collected), closes the listener; within `timeoutMs`. */
  async close(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await this.captures.close(timeoutMs);
    await this.listener?.close(Math.max(0, deadline - Date.now()));
    this.appUrl = undefined;
    if (this.holdsHeap) {
      this.holdsHeap = false;
      this.deps.engine.heap.release();
    }
  }
}
