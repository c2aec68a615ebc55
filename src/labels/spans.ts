/**
 * OpenTelemetry span profiles ("traces to profiles"): CPU and wall samples of a request whose
 * trace is sampled carry `span_id` and `span_name` of the request's local root span, and that
 * span gets the attribute `pyroscope.profile.id` = its span id, which is what makes Grafana's
 * Tempo show "Profiles for this span" (it then asks Pyroscope for the samples whose span_id is
 * in the selected set).
 *
 * `@opentelemetry/api` is an optional peer dependency, required lazily (only when the
 * `spanProfiles` option is not false): without it nothing here runs and nothing is loaded.
 *
 * Request path (see RequestLabels.onRequest): find the local root of the active span (a
 * property read), wrap the route label set and the root span in one small SpanSampleContext, set
 * the attribute: 100-350 ns measured (Node 20 and 24). Nothing is formatted then: the span id is
 * already a string in OpenTelemetry JS, and the label record `{ ...route labels, span_name,
 * span_id }` is built once per context when the window's samples are turned into labels
 * (SpanSampleContext.sampleLabels), so only for requests a sample actually hit.
 * The context is per request. In CPED mode (Node 24+) a new context means a new native holder
 * in the engine: an API object with a weak handle, which the scavenger does not free, so it is
 * promoted and lives until a full GC. That is most of the cost of span profiles there
 * (`npm run bench:diagnosis`, Node 24, traced /hello: a fresh holder per request +11.0 µs
 * [+8.2, +13.7] of the +13.1 µs that spans cost; on the realistic /orders neither is told from
 * noise). Holders cannot be pooled: the engine reads a holder's context when the window is cut,
 * so one could serve another request only once every async frame of its request is gone (known
 * only after a full GC) and a window was cut since; at 15,000 traced requests a second that is
 * hundreds of thousands of holders (tried: a 16,384-slot pool served 15 % of requests, an
 * unbounded one cost more than fresh holders). A cheaper context needs the engine's help.
 * Requests of unsampled traces keep the shared route holder.
 *
 * Finding the local root: the span active in our hook may be a child (with @fastify/otel,
 * hooks registered after it run inside their own spans, and with instrumentation-http as well
 * its request span is a child of the HTTP server span). A span knows only its parent's id, not
 * the parent span, so a SpanProcessor (LocalRootTracker) records each span's local root when
 * the span starts: a span whose parent is absent or remote is a root, any other span inherits
 * its parent's root. The tracker is attached to the registered tracer provider at each session
 * start (SDK 1.x: addSpanProcessor; SDK 2.x has no public way after construction, so it joins
 * the provider's span processor list, checked by shape) or added by the user to
 * `spanProcessors` (spanProfilesProcessor()). Without the tracker, only an active span that is
 * itself a local root (SDK 2.x `parentSpanContext` absent or remote) can be used.
 */
import type { Labels } from '../types';
import { sanitizeLabelValue } from '../pyroscope-rules';

export const SPAN_ID_LABEL = 'span_id';
export const SPAN_NAME_LABEL = 'span_name';
/** The span attribute Grafana looks for to offer "Profiles for this span". */
export const PROFILE_ID_ATTRIBUTE = 'pyroscope.profile.id';

const SAMPLED_FLAG = 1;
const SPAN_ID_FORM = /^[0-9a-f]{16}$/;
const INVALID_SPAN_ID = '0000000000000000';

/** The parts of an OpenTelemetry span used here (structural, so no type import of the API leaks). */
export interface OtelSpanContext {
  readonly traceId: string;
  readonly spanId: string;
  readonly traceFlags: number;
  readonly isRemote?: boolean;
}
export interface OtelSpan {
  spanContext(): OtelSpanContext;
  setAttribute(key: string, value: string): unknown;
  /** SDK spans: the name (may be updated while the span runs; read at encoding) */
  readonly name?: string;
  /** SDK 2.x: the parent's span context (absent for a root; isRemote for an incoming parent) */
  readonly parentSpanContext?: OtelSpanContext;
}
export type OtelContext = object;
/** The parts of `@opentelemetry/api` used here. */
export interface OtelApi {
  trace: {
    getActiveSpan(): OtelSpan | undefined;
    getSpan(context: OtelContext): OtelSpan | undefined;
    getTracerProvider(): object;
  };
}

/**
 * What a labelled request's samples point at when it belongs to a sampled trace: the route label
 * set (shared) and the local root span (per request). Immutable except for the memoized labels.
 */
export class SpanSampleContext {
  private resolved: Labels | undefined;

  constructor(
    readonly labels: Labels | undefined,
    readonly root: OtelSpan,
  ) {}

  /** The sample labels: route labels + span_name + span_id. Built at encoding, once per context. */
  sampleLabels(): Labels {
    if (this.resolved !== undefined) return this.resolved;
    const out: Record<string, string> = this.labels === undefined ? {} : { ...this.labels };
    try {
      const name = this.root.name;
      if (typeof name === 'string' && name.length > 0) out[SPAN_NAME_LABEL] = sanitizeLabelValue(name);
      const spanId = spanIdLabelValue(this.root.spanContext().spanId);
      if (spanId !== undefined) out[SPAN_ID_LABEL] = spanId;
    } catch {
      // a foreign span object that throws: its samples keep the route labels
    }
    this.resolved = Object.freeze(out);
    return this.resolved;
  }
}

/** The form Pyroscope decodes (16 lowercase hex), or undefined: anything else would become span 0. */
export function spanIdLabelValue(spanId: unknown): string | undefined {
  if (typeof spanId !== 'string') return undefined;
  const id = SPAN_ID_FORM.test(spanId) ? spanId : spanId.toLowerCase();
  // all zeros is OpenTelemetry's invalid span id (and Pyroscope's "no span")
  return SPAN_ID_FORM.test(id) && id !== INVALID_SPAN_ID ? id : undefined;
}

/** A sample context's labels: span contexts resolved, label sets as they are. */
export function sampleLabelsOf(context: unknown): unknown {
  return context instanceof SpanSampleContext ? context.sampleLabels() : context;
}

function isSampled(span: OtelSpan): boolean {
  return (span.spanContext().traceFlags & SAMPLED_FLAG) === SAMPLED_FLAG;
}

/** SDK 2.x fields: a span whose parent is absent or remote. Undefined when the span cannot tell. */
function isLocalRootByFields(span: OtelSpan): boolean | undefined {
  if (!('parentSpanContext' in span)) return undefined;
  const parent = span.parentSpanContext;
  return parent === undefined || parent.isRemote === true;
}

/** Marks our span processors, also across copies of this module (Symbol.for). */
const TRACKER_MARK = Symbol.for('fastify-continuous-profiling.local-root-tracker');

/**
 * Where the tracker writes a span's local root: a property on the span object itself.
 * Not a WeakMap: every span in a WeakMap is an ephemeron the garbage collector must trace
 * specially, and measured here that made starting and ending a span 4x as slow (2.7 -> 11 us
 * on Node 20, 100k spans). A symbol property costs a store, and every span gets it (one shape).
 */
const LOCAL_ROOT = Symbol.for('fastify-continuous-profiling.local-root');
type TrackedSpan = OtelSpan & { [LOCAL_ROOT]?: OtelSpan };

/**
 * A SpanProcessor that records each started span's local root, while tracking is on (a
 * session runs). Spans that are not sampled never reach span processors.
 */
export class LocalRootTracker {
  readonly [TRACKER_MARK] = true;
  /** on while a session runs (SpanProfiles.activate / deactivate) */
  tracking = false;
  /** a provider has called us: we are in its span processors, whatever its shape */
  called = false;

  constructor(private readonly api: OtelApi) {}

  onStart(span: OtelSpan, parentContext: OtelContext): void {
    this.called = true;
    if (!this.tracking) return;
    try {
      const parent = parentContext === undefined ? undefined : this.api.trace.getSpan(parentContext);
      let root: OtelSpan | undefined = span;
      if (parent !== undefined && parent.spanContext().isRemote !== true) {
        root = (parent as TrackedSpan)[LOCAL_ROOT] ?? (isLocalRootByFields(parent) === true ? parent : undefined);
      }
      (span as TrackedSpan)[LOCAL_ROOT] = root;
    } catch {
      // never throw into the tracer (a span processor's error would reach the traced code)
    }
  }

  onEnd(): void {}
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    this.tracking = false;
    return Promise.resolve();
  }

  /** The local root of `span`, if known. */
  localRootOf(span: OtelSpan): OtelSpan | undefined {
    const known = (span as TrackedSpan)[LOCAL_ROOT];
    if (known !== undefined) return known;
    return isLocalRootByFields(span) === true ? span : undefined;
  }
}

export type SpanProfilesSetting = boolean | undefined;

/** What happened when a session looked for a tracer provider to attach to. */
export type TrackerAttachment = 'attached' | 'no-provider' | 'unsupported-provider';

export interface SpanProfileStats {
  /**
   * As found at the last session start: `on`; `no-provider` (no tracer provider registered:
   * nothing labelled); `root-spans-only` (a provider the root tracker cannot join: only requests
   * whose active span is their local root are labelled); `idle` before the first session.
   */
  state: 'idle' | 'no-provider' | 'root-spans-only' | 'on';
  /** requests whose samples were given a span (sampled trace with a known local root) */
  labelledRequests: number;
  /** requests with a sampled active span whose local root could not be found */
  rootsNotFound: number;
}

export interface SpanProfilesOptions {
  /** the option: undefined = on when a provider is registered, true = insist (warn if not), false = off */
  setting: SpanProfilesSetting;
  warn: (message: string) => void;
  /** tests: the API to use instead of requiring @opentelemetry/api */
  api?: OtelApi;
}

/**
 * The span side of request labels, created only when the API loaded. Per session: activate()
 * attaches the tracker to the provider (or finds it there); per request: contextForRequest().
 */
export class SpanProfiles {
  /** true while a session runs with a tracer provider: the request path looks at spans */
  enabled = false;
  labelledRequests = 0;
  rootsNotFound = 0;
  private attachment: TrackerAttachment | undefined;
  private warned = false;
  readonly tracker: LocalRootTracker;

  constructor(
    private readonly api: OtelApi,
    private readonly options: SpanProfilesOptions,
  ) {
    this.tracker = processTracker(api);
  }

  /** Whether a tracer provider is registered right now (not the no-op one). Never throws. */
  providerRegistered(): boolean {
    try {
      return registeredProvider(this.api) !== undefined;
    } catch {
      return false;
    }
  }

  /** Session start. Never throws. */
  activate(): void {
    try {
      this.attachment = attachTracker(this.api, this.tracker);
    } catch {
      this.attachment = 'unsupported-provider';
    }
    if (this.attachment === 'no-provider') {
      this.enabled = false;
      if (this.options.setting === true) {
        this.warnOnce('spanProfiles: true, but no OpenTelemetry tracer provider is registered; samples carry no span_id until one is (start the OpenTelemetry SDK before the first profiling session)');
      }
      return;
    }
    // a provider we cannot see into, but one that lists spanProfilesProcessor() and started spans
    if (this.attachment === 'unsupported-provider' && this.tracker.called) this.attachment = 'attached';
    if (this.attachment === 'unsupported-provider') {
      this.warnOnce(
        'spanProfiles: the registered tracer provider takes no span processor this plugin can add itself; only requests whose active span is their local root get a span_id. Add spanProfilesProcessor() to the provider\'s spanProcessors for every request to be covered',
      );
    }
    this.tracker.tracking = true;
    this.enabled = true;
  }

  /** Session end. */
  deactivate(): void {
    this.enabled = false;
    this.tracker.tracking = false;
  }

  /**
   * The sample context for a request carrying `labels`, or undefined when its trace is not
   * sampled, has no active span, or its root is unknown. Sets `pyroscope.profile.id` on the root.
   */
  contextForRequest(labels: Labels | undefined): SpanSampleContext | undefined {
    if (!this.enabled) return undefined;
    try {
      const active = this.api.trace.getActiveSpan();
      if (active === undefined || !isSampled(active)) return undefined;
      const root = this.tracker.localRootOf(active);
      if (root === undefined || !isSampled(root)) {
        this.rootsNotFound++;
        return undefined;
      }
      root.setAttribute(PROFILE_ID_ATTRIBUTE, root.spanContext().spanId);
      this.labelledRequests++;
      return new SpanSampleContext(labels, root);
    } catch {
      return undefined;
    }
  }

  stats(): SpanProfileStats {
    return {
      state:
        this.attachment === undefined
          ? 'idle'
          : this.attachment === 'no-provider'
            ? 'no-provider'
            : this.attachment === 'unsupported-provider'
              ? 'root-spans-only'
              : 'on',
      labelledRequests: this.labelledRequests,
      rootsNotFound: this.rootsNotFound,
    };
  }

  private warnOnce(message: string): void {
    if (this.warned) return;
    this.warned = true;
    this.options.warn(message);
  }
}

/** One tracker per process and API copy: providers and the user's spanProcessors share it. */
const TRACKERS = new WeakMap<object, LocalRootTracker>();
function processTracker(api: OtelApi): LocalRootTracker {
  let tracker = TRACKERS.get(api);
  if (tracker === undefined) {
    tracker = new LocalRootTracker(api);
    TRACKERS.set(api, tracker);
  }
  return tracker;
}

interface MultiProcessorShape {
  _spanProcessors?: unknown;
}
interface ProviderShape {
  getDelegate?: () => object;
  addSpanProcessor?: (processor: unknown) => void;
  _activeSpanProcessor?: MultiProcessorShape;
  _registeredSpanProcessors?: unknown;
}

/**
 * Adds the tracker to the registered tracer provider unless it is there already.
 * - ProxyTracerProvider without a delegate (or a Noop delegate): 'no-provider'.
 * - SDK 2.x BasicTracerProvider / NodeTracerProvider: its MultiSpanProcessor's list (the one
 *   every tracer of the provider shares) gets the tracker at its end. Not public API: checked
 *   by shape, and anything else is 'unsupported-provider'.
 * - SDK 1.x: addSpanProcessor.
 */
function registeredProvider(api: OtelApi): ProviderShape | undefined {
  let provider = api.trace.getTracerProvider() as ProviderShape | undefined;
  if (provider !== undefined && typeof provider.getDelegate === 'function') provider = provider.getDelegate() as ProviderShape | undefined;
  if (provider === undefined || provider === null || provider.constructor?.name === 'NoopTracerProvider') return undefined;
  return provider;
}

export function attachTracker(api: OtelApi, tracker: LocalRootTracker): TrackerAttachment {
  const provider = registeredProvider(api);
  if (provider === undefined) return 'no-provider';
  const multi = provider._activeSpanProcessor;
  const list = multi?._spanProcessors;
  if (Array.isArray(list)) {
    if (list.some(isTracker)) return 'attached';
    if (typeof provider.addSpanProcessor === 'function') {
      provider.addSpanProcessor(tracker);
      return 'attached';
    }
    // a new array: the user's own spanProcessors array is not changed under them
    multi!._spanProcessors = [...(list as unknown[]), tracker];
    return 'attached';
  }
  if (typeof provider.addSpanProcessor === 'function') {
    provider.addSpanProcessor(tracker);
    return 'attached';
  }
  return 'unsupported-provider';
}

function isTracker(processor: unknown): boolean {
  return typeof processor === 'object' && processor !== null && (processor as Record<symbol, unknown>)[TRACKER_MARK] === true;
}

/**
 * Loads `@opentelemetry/api` when the option allows it; undefined when it is absent or off.
 * `true` with the API absent warns (once: this is called once per plugin registration).
 */
export function loadSpanProfiles(options: SpanProfilesOptions): SpanProfiles | undefined {
  if (options.setting === false) return undefined;
  const api = options.api ?? requireOtelApi();
  if (api === undefined) {
    if (options.setting === true) {
      options.warn('spanProfiles: true, but @opentelemetry/api cannot be loaded; install it (npm install @opentelemetry/api) to label samples with span ids');
    }
    return undefined;
  }
  return new SpanProfiles(api, options);
}

function requireOtelApi(): OtelApi | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const api = require('@opentelemetry/api') as Partial<OtelApi>;
    return typeof api.trace?.getActiveSpan === 'function' ? (api as OtelApi) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A span processor to list in the tracer provider's `spanProcessors`, for providers the plugin
 * cannot add its own to (see README "Traces to profiles"). Shares the process's tracker; returns
 * the same object every time.
 */
export function spanProfilesProcessor(): LocalRootTracker {
  const api = requireOtelApi();
  if (api === undefined) throw new Error('spanProfilesProcessor(): @opentelemetry/api cannot be loaded');
  return processTracker(api);
}
