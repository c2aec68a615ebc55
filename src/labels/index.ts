/**
 * Per-request labels: every CPU/wall sample taken while a request runs carries its `route`
 * pattern and `method` (plus static and `withLabels` labels), correct across `await` under
 * concurrency. The plugin glue calls this module; the profiler pipeline never sees requests.
 *
 * Lifecycle, driven by the time profiler:
 *   detectMode() -> time.start({ ...timeProfilerOptions() }) -> activate()
 *   ... requests (onRequest, withLabels) ...
 *   time.stop(true, generateLabels)                     (each window)
 *   deactivate() -> time.stop(false, generateLabels)    (end of session)
 *
 * When inactive the request path is one boolean check: no AsyncLocalStorage entry, no hook.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Labels } from '../types';
import { describeValue } from '../errors';
import { LabelCardinalityCap } from './cardinality';
import {
  DEFAULT_MAX_LABELS_PER_SAMPLE,
  extendLabels,
  noDrops,
  runtimeLabelNameProblem,
  type LabelSetDrops,
} from './label-set';
import {
  asyncContextFrameActive,
  createPropagator,
  labelsOfContext,
  type ContextEngine,
  type LabelMode,
  type LabelPropagator,
} from './propagation';
import { RouteLabelCache, type RouteProfilingConfig } from './route-labels';
import { sampleLabelsOf, SpanSampleContext, type SpanProfiles, type SpanProfileStats } from './spans';
import { UpgradeSocketBindings, type LabelRunner } from './websocket';

export type { LabelMode } from './propagation';
export type { RouteProfilingConfig } from './route-labels';
export { isWebSocketRoute } from './websocket';
export { loadSpanProfiles, spanProfilesProcessor, SPAN_ID_LABEL, SPAN_NAME_LABEL, PROFILE_ID_ATTRIBUTE } from './spans';
export type { SpanProfiles, SpanProfileStats } from './spans';
export { OVERFLOW_VALUE } from './cardinality';
export {
  BUILTIN_LABEL_NAMES,
  DEFAULT_MAX_LABELS_PER_SAMPLE,
  MAIN_THREAD,
  METHOD_LABEL,
  NOT_FOUND_ROUTE,
  ROUTE_LABEL,
  THREAD_LABEL,
  routeProfilingConfigProblem,
  validateStaticLabels,
} from './label-set';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * Profiling of this route: `false` = its samples carry no labels (health checks...);
     * `{ labels: { team: 'payments' } }` = static labels added to its samples.
     */
    profiling?: RouteProfilingConfig;
  }
}

export interface LabelOptions {
  /** label samples with the route pattern (`route`) */
  route: boolean;
  /** label samples with the request method (`method`) */
  method: boolean;
  /** distinct values per label name per window before newcomers collapse into `(overflow)` */
  maxLabelValues: number;
  /** labels per sample, all sources together (default 10; see DEFAULT_MAX_LABELS_PER_SAMPLE) */
  maxLabelsPerSample?: number;
  /** skip detection (tests; forcing 'cped' where AsyncContextFrame is off loses every label) */
  forceMode?: LabelMode;
  /** the profiler's context API (tests); default @datadog/pprof's `time` */
  engine?: ContextEngine;
  /** OpenTelemetry span profiles, when the option allows them and the API loaded */
  spans?: SpanProfiles;
  /** told once, at the first activation, when a cheaper label mode is a flag away (labelModeHint) */
  info?: (fields: Record<string, unknown>, message: string) => void;
  /** the Node.js version the hint is about (tests); default process.versions.node */
  nodeVersion?: string;
}

export interface LabelStats {
  mode?: LabelMode;
  active: boolean;
  /** distinct values collapsed into `(overflow)` by maxLabelValues, summed over windows */
  overflowedValues: number;
  /** samples carrying a collapsed value, summed over windows */
  overflowedSamples: number;
  /** labels not applied because the per-sample limit was reached */
  labelsOverLimit: number;
  /** labels not applied for an invalid name or value (route config added before the plugin, withLabels values) */
  labelsInvalid: number;
  /** times the engine refused a context while active (labelling then stops for the session) */
  engineErrors: number;
  /** OpenTelemetry span profiles, when loaded */
  spans?: SpanProfileStats;
}

/** Thrown by withLabels for a label name Pyroscope would refuse (a programming error). */
export class InvalidLabelError extends TypeError {
  readonly code = 'FST_CONTINUOUS_PROFILING_INVALID_LABEL';
  override readonly name = 'InvalidLabelError';
}

/** Known-good names from withLabels calls, so repeated calls skip the regex; bounded. */
const MAX_REMEMBERED_NAMES = 1024;

/**
 * On Node 22 without --experimental-async-context-frame labels take the async-hooks mode, which
 * costs more per request than CPED (issue 19: the plugin's own part on `/orders` +7.3 % on Node 22
 * against +2.3-2.7 % with CPED on Node 24/26, bench/RESULTS.md); the flag exists from Node 22.7.
 * Node 20 has no such flag, 24 and later use CPED by default: nothing to say there.
 */
export function labelModeHint(mode: LabelMode, nodeVersion: string): string | undefined {
  const [major, minor] = nodeVersion.split('.').map(Number);
  if (mode !== 'async-hooks' || major !== 22 || minor < 7) return undefined;
  return 'continuous profiling: route labels use async hooks on this Node 22 (the plugin\'s own cost on a realistic route +7 % of a request\'s CPU in the bench, against +2-3 % with CPED on Node 24/26); start Node with --experimental-async-context-frame for the cheaper CPED mode';
}

type GenerateLabelsArgs = { node: unknown; context?: { context?: object } };
type DoneCallback = () => void;

/**
 * The labeler of one registration: what the engine calls (activate, deactivate, generateLabels),
 * the request hooks and withLabels.
 * long: those three sides share one propagator and one active flag, read on every request; each
 * member is short and the name check, route cache and cardinality cap are rooms of their own
 */
export class RequestLabels implements LabelRunner {
  private modeValue: LabelMode | undefined;
  private propagator: LabelPropagator | undefined;
  private activeValue = false;
  private readonly maxLabels: number;
  private readonly drops: LabelSetDrops = noDrops();
  private readonly routes: RouteLabelCache;
  private readonly cap: LabelCardinalityCap;
  private readonly names = new LabelNameCheck();
  private readonly upgradeSockets = new UpgradeSocketBindings(this);
  private hinted = false;

  constructor(private readonly opts: LabelOptions) {
    this.maxLabels = opts.maxLabelsPerSample ?? DEFAULT_MAX_LABELS_PER_SAMPLE;
    assertPositiveInteger('maxLabelValues', opts.maxLabelValues);
    assertPositiveInteger('maxLabelsPerSample', this.maxLabels);
    this.routes = new RouteLabelCache(
      { route: opts.route, method: opts.method, maxLabels: this.maxLabels },
      this.drops,
    );
    this.cap = new LabelCardinalityCap(opts.maxLabelValues);
  }

  get active(): boolean {
    return this.activeValue;
  }

  get mode(): LabelMode | undefined {
    return this.modeValue;
  }

  /** CPED when AsyncContextFrame is really active (asked of the engine), else async-hooks. Memoized. */
  detectMode(): LabelMode {
    this.modeValue ??= this.opts.forceMode ?? (asyncContextFrameActive() ? 'cped' : 'async-hooks');
    return this.modeValue;
  }

  /** What time.start must be given for labels to work in the detected mode. */
  timeProfilerOptions(): { withContexts: true; useCPED: boolean } {
    return { withContexts: true, useCPED: this.detectMode() === 'cped' };
  }

  /** Right after time.start() succeeded: requests from now on get labels. */
  activate(): void {
    if (this.activeValue) return;
    this.propagator ??= createPropagator(this.detectMode(), this.opts.engine);
    this.propagator.enable();
    this.cap.resetWindow();
    this.opts.spans?.activate();
    this.activeValue = true;
    if (!this.hinted) {
      this.hinted = true;
      const node = this.opts.nodeVersion ?? process.versions.node;
      const hint = labelModeHint(this.detectMode(), node);
      if (hint !== undefined) this.opts.info?.({ labelMode: this.modeValue, node }, hint);
    }
  }

  /** Right before time.stop(false): no engine call happens after this returns. */
  deactivate(): void {
    if (!this.activeValue) return;
    this.activeValue = false;
    this.opts.spans?.deactivate();
    this.propagator?.disable();
  }

  /**
   * For time.stop(restart, generateLabels): a sample's context as its (capped) string labels.
   * Span contexts become their route labels + span_name + span_id here, once per context.
   */
  readonly generateLabels = (args: GenerateLabelsArgs): Record<string, string> =>
    this.cap.apply(sampleLabelsOf(labelsOfContext(args.context?.context))) as Record<string, string>;

  /** Fastify callback-style onRequest hook: runs the rest of the request inside its labels. */
  readonly onRequest = (request: FastifyRequest, _reply: FastifyReply, done: DoneCallback): void => {
    if (!this.activeValue) {
      done();
      return;
    }
    const labels = this.requestLabels(request);
    if (labels === undefined || this.propagator === undefined) {
      done();
      return;
    }
    const spans = this.opts.spans;
    if (spans !== undefined && spans.enabled) {
      // a sampled trace: one context object per request (route labels + root span)
      const spanContext = spans.contextForRequest(labels);
      if (spanContext !== undefined) {
        this.propagator.run(spanContext, done);
        return;
      }
    }
    // route label sets are cached per route and method: the same objects come back (reused)
    this.propagator.run(labels, done, true);
  };

  /**
   * Route-level onRequest hook of websocket routes only (see websocket.ts): the upgraded socket's
   * events, hence every message, run under this request's route labels, in this session and
   * later ones, until the socket closes. Bound whether a session runs or not: connections live
   * longer than sessions.
   */
  readonly onWebSocketRequest = (request: FastifyRequest, _reply: FastifyReply, done: DoneCallback): void => {
    const socket = request.raw.socket;
    if (request.headers.upgrade !== undefined && socket !== null && socket !== undefined) {
      const labels = this.requestLabels(request);
      if (labels !== undefined) this.upgradeSockets.bind(socket, labels);
    }
    done();
  };

  /** For the upgrade sockets: runs `fn` under a route label set (kept by the caller, so reused). */
  run<T>(labels: Labels, fn: () => T): T {
    const propagator = this.propagator;
    return this.activeValue && propagator !== undefined ? propagator.run(labels, fn, true) : fn();
  }

  /** The plugin closes: upgrade sockets still open get their own emit back. */
  releaseSockets(): void {
    this.upgradeSockets.unbindAll();
  }

  /**
   * Fastify preHandler hook, added only when span profiles are possible: a second look for the
   * request's span when onRequest found none. Tracers that start their request span in an
   * onRequest hook registered after this plugin's (@fastify/otel registered later) have a span
   * by now; the onRequest stage's few samples then lack span_id, the handler's carry it.
   */
  readonly onPreHandler = (request: FastifyRequest, _reply: FastifyReply, done: DoneCallback): void => {
    const spans = this.opts.spans;
    const propagator = this.propagator;
    if (!this.activeValue || spans === undefined || !spans.enabled || propagator === undefined) {
      done();
      return;
    }
    const current = propagator.current();
    if (current instanceof SpanSampleContext) {
      done();
      return;
    }
    const labels = this.requestLabels(request);
    const spanContext = labels === undefined ? undefined : spans.contextForRequest(current ?? labels);
    if (spanContext === undefined) {
      done();
      return;
    }
    propagator.run(spanContext, done);
  };

  /**
   * Runs `fn` with `labels` added to the current ones, for `fn` and everything it awaits; the
   * outer labels apply again afterwards. Names are checked even when no session runs, so a bad
   * name fails in development rather than the day profiling switches on: InvalidLabelError.
   * Values are sanitized (forbidden characters replaced, cut to Pyroscope's limit); values
   * that are not strings/numbers/booleans, or empty, are skipped and counted. `route` and
   * `method` may be set too, for work the plugin cannot follow to its request (their value then
   * replaces the request's inside `fn`; maxLabelValues caps them like any label).
   */
  withLabels<T>(labels: Record<string, string>, fn: () => T): T {
    this.names.assertValid(labels);
    const propagator = this.propagator;
    if (!this.activeValue || propagator === undefined) return fn();
    const current = propagator.current();
    if (current instanceof SpanSampleContext) {
      // the request's span stays: only its label set is extended
      const extended = extendLabels(current.labels, labels, this.maxLabels, this.drops, runtimeLabelNameProblem);
      return propagator.run(new SpanSampleContext(extended, current.root), fn);
    }
    const merged = extendLabels(current, labels, this.maxLabels, this.drops, runtimeLabelNameProblem);
    return propagator.run(merged, fn);
  }

  /**
   * The running code's labels (route, method, withLabels extras, span labels) as a plain object
   * a worker thread can be sent (structured-clone safe), for `withTaskLabels` there; undefined
   * outside labelled work or when no session samples.
   */
  taskLabels(): Record<string, string> | undefined {
    const propagator = this.propagator;
    if (!this.activeValue || propagator === undefined) return undefined;
    const current = sampleLabelsOf(propagator.current());
    if (current === null || typeof current !== 'object') return undefined;
    return { ...(current as Labels) };
  }

  stats(): LabelStats {
    const cap = this.cap.stats();
    return {
      mode: this.modeValue,
      active: this.activeValue,
      overflowedValues: cap.overflowedValues,
      overflowedSamples: cap.overflowedSamples,
      labelsOverLimit: this.drops.overLimit,
      labelsInvalid: this.drops.invalidNames + this.drops.invalidValues,
      engineErrors: this.propagator?.engineErrors ?? 0,
      spans: this.opts.spans?.stats(),
    };
  }

  private requestLabels(request: FastifyRequest): Labels | undefined {
    try {
      return this.routes.labelsFor(request);
    } catch {
      // A request object without routeOptions (foreign decorators, tests): serve it unlabelled.
      this.drops.invalidValues++;
      return undefined;
    }
  }
}

/** withLabels names, checked at every call (a bad one throws InvalidLabelError); known-good ones remembered, bounded. */
class LabelNameCheck {
  private readonly valid = new Set<string>();

  assertValid(labels: Record<string, string>): void {
    if (labels === null || typeof labels !== 'object') {
      throw new InvalidLabelError(`withLabels: labels must be an object of label names to string values, received ${describeValue('withLabels', labels)}`);
    }
    for (const name of Object.keys(labels)) {
      if (this.valid.has(name)) continue;
      const problem = runtimeLabelNameProblem(name);
      if (problem !== undefined) {
        throw new InvalidLabelError(`withLabels: label name ${JSON.stringify(name)} ${problem}`);
      }
      if (this.valid.size < MAX_REMEMBERED_NAMES) this.valid.add(name);
    }
  }
}

function assertPositiveInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`labels: ${name} must be a positive integer, received ${String(value)}`);
  }
}
