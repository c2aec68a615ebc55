/**
 * src/labels/spans.ts in process, with the real OpenTelemetry API and SDK: which span a
 * request's samples are charged to, the attribute, the label form, the cardinality exemption,
 * how the root tracker joins the provider. The end-to-end proof over HTTP with the
 * instrumentations is test/span-profiles.test.ts.
 */
import { time } from '@datadog/pprof';
import { context, trace, TraceFlags, type Span } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ProfilingOptionError } from '../src/errors';
import { OVERFLOW_VALUE, RequestLabels, type LabelOptions } from '../src/labels';
import { resolveOptions } from '../src/options';
import { labelsOfContext } from '../src/labels/propagation';
import {
  attachTracker,
  LocalRootTracker,
  loadSpanProfiles,
  PROFILE_ID_ATTRIBUTE,
  spanIdLabelValue,
  spanProfilesProcessor,
  SpanProfiles,
  type OtelApi,
} from '../src/labels/spans';

const api = { trace } as unknown as OtelApi;
const DEFAULTS: LabelOptions = { route: true, method: true, maxLabelValues: 1000 };
const request = (url: string, method = 'GET') => ({ method, routeOptions: { url, config: { url } } });
const reply = {} as never;

/** The labels a sample taken inside `fn` would get (the engine's context, as the window encodes it). */
function labelsOf(labels: RequestLabels, sampleContext: unknown): Record<string, string> {
  return labels.generateLabels({ node: {}, context: { context: sampleContext as object } });
}

function currentSampleContext(): unknown {
  return labelsOfContext(time.getContext());
}

let exporter: InMemorySpanExporter;
let provider: NodeTracerProvider;
let userProcessors: SimpleSpanProcessor[];

beforeAll(() => {
  exporter = new InMemorySpanExporter();
  userProcessors = [new SimpleSpanProcessor(exporter)];
  provider = new NodeTracerProvider({ spanProcessors: userProcessors });
  provider.register();
});

afterAll(async () => {
  await provider.shutdown();
  trace.disable();
  context.disable();
});

function withSession<T>(labels: RequestLabels, fn: () => T): T {
  time.start({ intervalMicros: 1000, durationMillis: 20_000, collectCpuTime: true, lineNumbers: false, ...labels.timeProfilerOptions() });
  labels.activate();
  try {
    return fn();
  } finally {
    labels.deactivate();
    time.stop(false);
  }
}

describe('span labels of a request', () => {
  test('a request inside a child span is charged to the local root; withLabels keeps the span; only the root gets pyroscope.profile.id', () => {
    const spans = loadSpanProfiles({ setting: undefined, warn: () => undefined, api })!;
    const labels = new RequestLabels({ ...DEFAULTS, spans });
    const tracer = trace.getTracer('test');
    exporter.reset();
    const seen: unknown[] = [];
    let rootSpan: Span | undefined;
    withSession(labels, () => {
      tracer.startActiveSpan('GET /pay', (root) => {
        rootSpan = root;
        tracer.startActiveSpan('onRequest - hook', (child) => {
          labels.onRequest(request('/pay') as never, reply, () => {
            seen.push(currentSampleContext());
            labels.withLabels({ team: 'payments' }, () => seen.push(currentSampleContext()));
          });
          child.end();
        });
        root.end();
      });
    });
    const rootId = rootSpan!.spanContext().spanId;
    expect(labelsOf(labels, seen[0])).toEqual({ route: '/pay', method: 'GET', span_name: 'GET /pay', span_id: rootId });
    expect(labelsOf(labels, seen[1])).toEqual({ route: '/pay', method: 'GET', team: 'payments', span_name: 'GET /pay', span_id: rootId });
    const finished = exporter.getFinishedSpans();
    const byName = new Map(finished.map((s: ReadableSpan) => [s.name, s]));
    expect(byName.get('GET /pay')!.attributes[PROFILE_ID_ATTRIBUTE]).toBe(rootId);
    expect(byName.get('onRequest - hook')!.attributes).not.toHaveProperty(PROFILE_ID_ATTRIBUTE);
    expect(spans.stats()).toEqual({ state: 'on', labelledRequests: 1, rootsNotFound: 0 });
  });

  test('a remote sampled parent: the local span is the root; remote not sampled: route labels only, no attribute', () => {
    const spans = loadSpanProfiles({ setting: undefined, warn: () => undefined, api })!;
    const labels = new RequestLabels({ ...DEFAULTS, spans });
    const tracer = trace.getTracer('test');
    exporter.reset();
    const remote = (flags: number) =>
      trace.setSpanContext(context.active(), { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: flags, isRemote: true });
    const seen: Record<string, unknown> = {};
    let sampledRoot: Span | undefined;
    withSession(labels, () => {
      context.with(remote(TraceFlags.SAMPLED), () =>
        tracer.startActiveSpan('server', (span) => {
          sampledRoot = span;
          labels.onRequest(request('/in') as never, reply, () => (seen.sampled = currentSampleContext()));
          span.end();
        }),
      );
      context.with(remote(TraceFlags.NONE), () =>
        tracer.startActiveSpan('server', (span) => {
          expect(span.isRecording()).toBe(false);
          labels.onRequest(request('/in') as never, reply, () => (seen.unsampled = currentSampleContext()));
          span.end();
        }),
      );
      labels.onRequest(request('/in') as never, reply, () => (seen.noSpan = currentSampleContext()));
    });
    expect(labelsOf(labels, seen.sampled)).toEqual({ route: '/in', method: 'GET', span_name: 'server', span_id: sampledRoot!.spanContext().spanId });
    expect(labelsOf(labels, seen.unsampled)).toEqual({ route: '/in', method: 'GET' });
    expect(labelsOf(labels, seen.noSpan)).toEqual({ route: '/in', method: 'GET' });
    expect(exporter.getFinishedSpans().map((s) => s.attributes[PROFILE_ID_ATTRIBUTE])).toEqual([sampledRoot!.spanContext().spanId]);
  });

  test('no session: the request path does not look at spans and sets no attribute', () => {
    const spans = loadSpanProfiles({ setting: undefined, warn: () => undefined, api })!;
    const labels = new RequestLabels({ ...DEFAULTS, spans });
    exporter.reset();
    trace.getTracer('test').startActiveSpan('idle', (span) => {
      labels.onRequest(request('/x') as never, reply, () => undefined);
      span.end();
    });
    expect(exporter.getFinishedSpans()[0]!.attributes).toEqual({});
    expect(spans.enabled).toBe(false);
  });
});

describe('label form and cardinality', () => {
  test('span_id: 16 lowercase hex, uppercase lowered, anything else (and the invalid all-zero id) refused', () => {
    expect(spanIdLabelValue('00f067aa0ba902b7')).toBe('00f067aa0ba902b7');
    expect(spanIdLabelValue('00F067AA0BA902B7')).toBe('00f067aa0ba902b7');
    for (const bad of ['0000000000000000', 'f067aa0ba902b7', '00f067aa0ba902b7a', 'zzf067aa0ba902b7', 42, undefined]) {
      expect(spanIdLabelValue(bad)).toBeUndefined();
    }
  });

  test('span_id never counts against maxLabelValues nor collapses; span_name does', () => {
    const spans = loadSpanProfiles({ setting: undefined, warn: () => undefined, api })!;
    const labels = new RequestLabels({ ...DEFAULTS, maxLabelValues: 1, spans });
    const tracer = trace.getTracer('test');
    const seen: unknown[] = [];
    const ids: string[] = [];
    withSession(labels, () => {
      for (const name of ['first', 'second', 'second']) {
        tracer.startActiveSpan(name, (span) => {
          ids.push(span.spanContext().spanId);
          labels.onRequest(request('/r') as never, reply, () => seen.push(currentSampleContext()));
          span.end();
        });
      }
    });
    const out = seen.map((s) => labelsOf(labels, s));
    expect(out.map((l) => l.span_id)).toEqual(ids);
    expect(out.map((l) => l.span_name)).toEqual(['first', OVERFLOW_VALUE, OVERFLOW_VALUE]);
    expect(out.map((l) => l.route)).toEqual(['/r', '/r', '/r']);
    expect(labels.stats().overflowedValues).toBe(1);
  });
});

describe('joining the tracer provider', () => {
  test('the tracker joins the registered SDK 2.x provider once, leaves the user\'s spanProcessors array alone, and spanProfilesProcessor() is the same tracker', () => {
    const before = [...userProcessors];
    const tracker = spanProfilesProcessor();
    expect(attachTracker(api, tracker)).toBe('attached');
    expect(attachTracker(api, tracker)).toBe('attached');
    const list = (provider as unknown as { _activeSpanProcessor: { _spanProcessors: unknown[] } })._activeSpanProcessor._spanProcessors;
    expect(list.filter((p) => p instanceof LocalRootTracker)).toHaveLength(1);
    expect(userProcessors).toEqual(before);
    expect(spanProfilesProcessor()).toBe(tracker);
  });

  test('no provider registered: not on, and spanProfiles: true warns once over several sessions', () => {
    const warnings: string[] = [];
    const noProvider = { trace: { getActiveSpan: () => undefined, getSpan: () => undefined, getTracerProvider: () => trace.getTracerProvider() } } as unknown as OtelApi;
    const proxy = trace.getTracerProvider() as unknown as { getDelegate(): object };
    const spansOf = (setting: boolean | undefined) => new SpanProfiles(noProvider, { setting, warn: (m) => warnings.push(m) });
    // a ProxyTracerProvider without delegate stands for "nothing registered"
    const getDelegate = jest.spyOn(proxy, 'getDelegate').mockReturnValue(new (class NoopTracerProvider {})());
    try {
      const insisting = spansOf(true);
      insisting.activate();
      insisting.activate();
      expect(insisting.enabled).toBe(false);
      expect(insisting.stats().state).toBe('no-provider');
      const quiet = spansOf(undefined);
      quiet.activate();
      expect(quiet.enabled).toBe(false);
    } finally {
      getDelegate.mockRestore();
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('no OpenTelemetry tracer provider is registered');
  });

  test('a provider the tracker cannot join: warns once (root spans only); no warning once it lists spanProfilesProcessor()', () => {
    const warnings: string[] = [];
    const foreignProvider = { getTracer: () => undefined };
    const foreign = { trace: { getActiveSpan: () => undefined, getSpan: () => undefined, getTracerProvider: () => foreignProvider } } as unknown as OtelApi;
    const spans = new SpanProfiles(foreign, { setting: undefined, warn: (m) => warnings.push(m) });
    spans.activate();
    spans.activate();
    expect(spans.enabled).toBe(true);
    expect(spans.stats().state).toBe('root-spans-only');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('spanProfilesProcessor()');

    // the user listed the processor: the provider calls it, and the next session knows it is in
    const listed = { trace: { ...foreign.trace, getTracerProvider: () => ({ ...foreignProvider }) } } as unknown as OtelApi;
    const quiet: string[] = [];
    const withProcessor = new SpanProfiles(listed, { setting: undefined, warn: (m) => quiet.push(m) });
    withProcessor.tracker.onStart({ spanContext: () => ({ traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: 1 }), setAttribute: () => undefined }, {});
    withProcessor.activate();
    expect(withProcessor.stats().state).toBe('on');
    expect(quiet).toEqual([]);
  });

  test('spanProfiles: false loads nothing', () => {
    expect(loadSpanProfiles({ setting: false, warn: () => undefined })).toBeUndefined();
  });
});

describe('the spanProfiles option', () => {
  test('true, false or absent; anything else is refused naming the option; span_name takes one per-sample label slot unless false', () => {
    const base = { appName: 'shop', outputDir: '/tmp/x' };
    expect(resolveOptions({ ...base }, {}).spanProfiles).toBeUndefined();
    expect(resolveOptions({ ...base, spanProfiles: true }, {}).spanProfiles).toBe(true);
    expect(resolveOptions({ ...base, spanProfiles: false }, {}).spanProfiles).toBe(false);
    expect(() => resolveOptions({ ...base, spanProfiles: 'yes' as unknown as boolean }, {})).toThrow(ProfilingOptionError);
    expect(() => resolveOptions({ ...base, spanProfiles: 'yes' as unknown as boolean }, {})).toThrow(/spanProfiles/);
    expect(resolveOptions({ ...base }, {}).maxLabelsPerSample).toBe(resolveOptions({ ...base, spanProfiles: false }, {}).maxLabelsPerSample - 1);
  });
});
