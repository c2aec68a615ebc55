/**
 * RequestLabels (src/labels.ts): what each sample's context is at every point of a request.
 *
 * The profiler attaches to a sample whatever `time.getContext()` returns at that moment (the
 * engine's slot in async-hook mode, the AsyncContextFrame entry in CPED mode), so reading it at
 * chosen points across awaits checks propagation exactly, without depending on when signals
 * land. One test also checks real samples of a real profile.
 */
import asyncHooks = require('node:async_hooks');
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate as nextImmediate, setTimeout as sleep } from 'node:timers/promises';
import { time } from '@datadog/pprof';
import Fastify, { type FastifyContextConfig, type FastifyInstance } from 'fastify';
import type { Profile } from 'pprof-format';
import {
  InvalidLabelError,
  NOT_FOUND_ROUTE,
  OVERFLOW_VALUE,
  RequestLabels,
  labelModeHint,
  routeProfilingConfigProblem,
  validateStaticLabels,
  type LabelMode,
  type LabelOptions,
} from '../src/labels';
import { extendLabels, noDrops } from '../src/labels/label-set';
import { AsyncHookPropagator, CpedPropagator, asyncContextFrameActive, labelsOfContext, LabelHolder, type ContextEngine } from '../src/labels/propagation';
import { MAX_LABEL_VALUE_LENGTH } from '../src/pyroscope-rules';
import type { Labels } from '../src/types';
import { expectedLabelMode } from './helpers/node-line';

const DEFAULTS: LabelOptions = { route: true, method: true, maxLabelValues: 1000 };

/** The label set a sample taken right now would carry (the engine's context, holder unwrapped). */
function sampleContext(): unknown {
  return labelsOfContext(time.getContext());
}

function startProfiler(labels: RequestLabels): void {
  time.start({ intervalMicros: 1000, durationMillis: 20_000, collectCpuTime: true, lineNumbers: false, ...labels.timeProfilerOptions() });
  labels.activate();
}

function stopProfiler(labels: RequestLabels): Profile {
  labels.deactivate();
  return time.stop(false, labels.generateLabels);
}

/** One real HTTP request to `app` (listening on 127.0.0.1); resolves with status and body. */
function httpRequest(app: FastifyInstance, path: string, method = 'GET'): Promise<{ statusCode: number; body: string }> {
  const { port } = app.server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function listen(app: FastifyInstance): Promise<void> {
  await app.listen({ host: '127.0.0.1', port: 0 });
}

afterEach(() => {
  // A failed test must not leave the one profiler of this process running for the next.
  if (time.isStarted()) time.stop(false);
  jest.restoreAllMocks();
});

// -------------------------------------------------------------------------------------------------
// Validation and label-set rules (no profiler needed)

describe('validateStaticLabels / routeProfilingConfigProblem', () => {
  test('accepts valid static labels and the accepted route config shapes', () => {
    expect(validateStaticLabels('labels', { team: 'payments', 'tier.v2': 'gold' })).toBeUndefined();
    expect(routeProfilingConfigProblem('config.profiling', undefined)).toBeUndefined();
    expect(routeProfilingConfigProblem('config.profiling', false)).toBeUndefined();
    expect(routeProfilingConfigProblem('config.profiling', { labels: { team: 'payments' } })).toBeUndefined();
  });

  test('names the setting, the label and the rule in each refusal', () => {
    expect(validateStaticLabels('config.profiling.labels of route GET /pay', { 'team-name': 'x' })).toBe(
      'config.profiling.labels of route GET /pay: label name "team-name" may contain only letters, digits, "_" and "."',
    );
    expect(validateStaticLabels('labels', { route: 'x' })).toBe(
      'labels: label name "route" is set by the plugin itself (turn it off with the labels option)',
    );
    expect(validateStaticLabels('labels', { __name__: 'x' })).toBe('labels: label name "__name__" is reserved by Pyroscope');
    expect(validateStaticLabels('labels', { team: 42 })).toBe('labels: label "team" must have a non-empty string value, received 42');
    expect(validateStaticLabels('labels', { team: '' })).toBe('labels: label "team" must have a non-empty string value, received ""');
    expect(validateStaticLabels('labels', ['a'])).toBe('labels must be an object of label names to string values, received ["a"]');
    expect(validateStaticLabels('labels', { a: '1', b: '2', c: '3' }, 2)).toBe('labels has 3 labels, at most 2 are allowed per sample');
    expect(routeProfilingConfigProblem('config.profiling', 'off')).toBe(
      `config.profiling must be false or an object like { labels: { team: 'payments' } }, received "off"`,
    );
    expect(routeProfilingConfigProblem('config.profiling', { labels: { 'a b': 'x' } })).toBe(
      'config.profiling.labels: label name "a b" may contain only letters, digits, "_" and "."',
    );
  });
});

describe('extendLabels (runtime label values)', () => {
  test('replaces forbidden characters, cuts over-long values, skips unusable values and counts them', () => {
    const drops = noDrops();
    const labels = extendLabels(
      undefined,
      { a: 'x{y}=z,w\n\u0000', b: 'v'.repeat(MAX_LABEL_VALUE_LENGTH + 10), c: 7, d: { no: 1 }, e: '', 'f-g': 'bad name' },
      10,
      drops,
    );
    expect(labels).toEqual({ a: 'x_y__z_w__', b: 'v'.repeat(MAX_LABEL_VALUE_LENGTH), c: '7' });
    expect(Object.isFrozen(labels)).toBe(true);
    expect(drops).toEqual({ invalidNames: 1, invalidValues: 2, overLimit: 0 });
  });

  test('bounds the labels of one set: new names beyond the limit are dropped and counted, existing ones replaced', () => {
    const drops = noDrops();
    const outer = Object.freeze({ route: '/r', method: 'GET' });
    const labels = extendLabels(outer, { tenant: 'acme', region: 'eu', zone: 'a' }, 3, drops);
    expect(labels).toEqual({ route: '/r', method: 'GET', tenant: 'acme' });
    expect(drops.overLimit).toBe(2);
    const replaced = extendLabels(labels, { tenant: 'globex' }, 3, drops);
    expect(replaced).toEqual({ route: '/r', method: 'GET', tenant: 'globex' });
    expect(drops.overLimit).toBe(2);
  });
});

describe('RequestLabels options and detection', () => {
  test('refuses a maxLabelValues that is not a positive integer, naming it', () => {
    expect(() => new RequestLabels({ ...DEFAULTS, maxLabelValues: 0 })).toThrow('labels: maxLabelValues must be a positive integer, received 0');
    expect(() => new RequestLabels({ ...DEFAULTS, maxLabelsPerSample: 1.5 })).toThrow(
      'labels: maxLabelsPerSample must be a positive integer, received 1.5',
    );
  });

  test('detects the mode from the engine (CPED exactly when AsyncContextFrame is active), memoized', () => {
    const labels = new RequestLabels(DEFAULTS);
    expect(labels.mode).toBeUndefined();
    const expected: LabelMode = asyncContextFrameActive() ? 'cped' : 'async-hooks';
    expect(labels.detectMode()).toBe(expected);
    expect(labels.mode).toBe(expected);
    expect(labels.timeProfilerOptions()).toEqual({ withContexts: true, useCPED: expected === 'cped' });
    // Node 20 has no AsyncContextFrame; 22 only with a flag; 24 and later by default.
    expect(expected).toBe(expectedLabelMode());
  });

  test('names the flag for the cheaper mode once, at the first activation, on Node 22.7+ in async-hooks mode only', () => {
    expect(labelModeHint('async-hooks', '22.12.0')).toContain('--experimental-async-context-frame');
    for (const [mode, version] of [['async-hooks', '20.19.0'], ['async-hooks', '22.6.0'], ['cped', '22.12.0'], ['async-hooks', '24.1.0']] as const) {
      expect(labelModeHint(mode, version)).toBeUndefined();
    }
    const said: Array<{ fields: Record<string, unknown>; message: string }> = [];
    const labels = new RequestLabels({ ...DEFAULTS, forceMode: 'async-hooks', nodeVersion: '22.12.0', info: (fields, message) => said.push({ fields, message }) });
    expect(said).toEqual([]);
    for (let session = 0; session < 2; session++) {
      startProfiler(labels);
      stopProfiler(labels);
    }
    expect(said).toEqual([{ fields: { labelMode: 'async-hooks', node: '22.12.0' }, message: labelModeHint('async-hooks', '22.12.0') }]);
  });
});

// -------------------------------------------------------------------------------------------------
// The cardinality cap (generateLabels)

describe('generateLabels and the cardinality cap', () => {
  const sample = (context?: object) => ({ node: {}, ...(context ? { context: { context } } : {}) });

  test('keeps string labels, gives samples without context no labels', () => {
    const labels = new RequestLabels(DEFAULTS);
    expect(labels.generateLabels(sample())).toEqual({});
    expect(labels.generateLabels(sample({ route: '/a', n: 3 }))).toEqual({ route: '/a' });
  });

  test('collapses values beyond maxLabelValues per name into one overflow value, counted once per value', async () => {
    const labels = new RequestLabels({ ...DEFAULTS, maxLabelValues: 2 });
    const gen = (route: string) => labels.generateLabels(sample(Object.freeze({ route, method: 'GET' })));
    // One window = one synchronous time.stop(): all calls below are in the same tick.
    expect(gen('/a')).toEqual({ route: '/a', method: 'GET' });
    expect(gen('/b')).toEqual({ route: '/b', method: 'GET' });
    expect(gen('/c')).toEqual({ route: OVERFLOW_VALUE, method: 'GET' });
    expect(gen('/d')).toEqual({ route: OVERFLOW_VALUE, method: 'GET' });
    expect(gen('/c')).toEqual({ route: OVERFLOW_VALUE, method: 'GET' });
    expect(gen('/a')).toEqual({ route: '/a', method: 'GET' });
    expect(labels.stats()).toEqual(expect.objectContaining({ overflowedValues: 2, overflowedSamples: 3 }));

    // The next time.stop() is a new window: the count starts afresh.
    await Promise.resolve();
    expect(gen('/c')).toEqual({ route: '/c', method: 'GET' });
    expect(gen('/d')).toEqual({ route: '/d', method: 'GET' });
    expect(gen('/e')).toEqual({ route: OVERFLOW_VALUE, method: 'GET' });
    expect(labels.stats().overflowedValues).toBe(3);
  });
});

// -------------------------------------------------------------------------------------------------
// Inactive: one check, nothing else

describe('when no session runs', () => {
  test('onRequest calls done at once and enters no AsyncLocalStorage; no hook is created; withLabels just runs fn', async () => {
    const run = jest.spyOn(asyncHooks.AsyncLocalStorage.prototype, 'run');
    const createHook = jest.spyOn(asyncHooks, 'createHook');
    const setContext = jest.spyOn(time, 'setContext');
    const labels = new RequestLabels(DEFAULTS);
    const app = Fastify();
    app.addHook('onRequest', labels.onRequest);
    app.get('/x', async () => labels.withLabels({ tenant: 'acme' }, () => 'ran'));
    await listen(app);
    const res = await httpRequest(app, '/x');
    expect(res.body).toBe('ran');
    expect(run).not.toHaveBeenCalled();
    expect(createHook).not.toHaveBeenCalled();
    expect(setContext).not.toHaveBeenCalled();
    expect(labels.active).toBe(false);
    await app.close();
  });

  test('withLabels still refuses an invalid name, with a clear error (a bug shows before profiling is on)', () => {
    const labels = new RequestLabels(DEFAULTS);
    const fn = jest.fn();
    expect(() => labels.withLabels({ 'tenant-id': 'acme' }, fn)).toThrow(
      new InvalidLabelError('withLabels: label name "tenant-id" may contain only letters, digits, "_" and "."'),
    );
    let thrown: unknown;
    try {
      labels.withLabels({ __name__: 'x' }, fn);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidLabelError);
    expect((thrown as InvalidLabelError).code).toBe('FST_CONTINUOUS_PROFILING_INVALID_LABEL');
    expect((thrown as Error).message).toBe('withLabels: label name "__name__" is reserved by Pyroscope');
    expect(fn).not.toHaveBeenCalled();
  });

  test('withLabels accepts the built-in names route and method (work the plugin cannot follow names its route)', () => {
    const labels = new RequestLabels(DEFAULTS);
    expect(labels.withLabels({ route: '/jobs/import', method: 'JOB' }, () => 'ran')).toBe('ran');
  });

  test('withLabels refuses thread: the plugin says which thread ran a sample', () => {
    const labels = new RequestLabels(DEFAULTS);
    expect(() => labels.withLabels({ thread: 'pool' }, () => 'ran')).toThrow('withLabels: label name "thread" is set by the plugin itself (the thread that ran the sample)');
  });
});

// -------------------------------------------------------------------------------------------------
// Propagation through real Fastify requests, in every mode this Node supports

const MODES: LabelMode[] = asyncContextFrameActive() ? ['cped', 'async-hooks'] : ['async-hooks'];

describe.each(MODES)('in %s mode', (mode) => {
  let labels: RequestLabels;
  let app: FastifyInstance;
  /** contexts recorded by handlers at chosen points */
  let seen: Record<string, unknown>;

  async function buildApp(options: Partial<LabelOptions> = {}, extraRoutes: (app: FastifyInstance) => void = () => {}): Promise<void> {
    labels = new RequestLabels({ ...DEFAULTS, ...options, forceMode: mode });
    seen = {};
    app = Fastify();
    app.addHook('onRequest', labels.onRequest);
    app.get('/users/:id', async (request) => {
      seen[`start ${request.url}`] = sampleContext();
      await sleep(1);
      seen[`after timer ${request.url}`] = sampleContext();
      await nextImmediate();
      await Promise.resolve().then(() => undefined);
      seen[`end ${request.url}`] = sampleContext();
      return 'ok';
    });
    app.register(
      async (child) => {
        child.get('/health', { config: { profiling: false } }, async () => {
          await sleep(1);
          seen.health = sampleContext();
          return 'ok';
        });
        child.post('/pay', { config: { profiling: { labels: { team: 'payments', 'bad-name': 'x' } } } }, async () => {
          await nextImmediate();
          seen.pay = sampleContext();
          return 'ok';
        });
      },
      { prefix: '/v1' },
    );
    app.setNotFoundHandler(async (_request, reply) => {
      await nextImmediate();
      seen.notFound = sampleContext();
      return reply.code(404).send('nope');
    });
    app.get('/nested', async () => {
      seen.outerBefore = sampleContext();
      const inner = await labels.withLabels({ tenant: 'acme' }, async () => {
        seen.innerStart = sampleContext();
        await sleep(1);
        seen.innerAfterAwait = await labels.withLabels({ step: 'charge', tenant: 'acme\nco' }, async () => {
          await nextImmediate();
          return sampleContext();
        });
        seen.innerEnd = sampleContext();
        return 'inner done';
      });
      seen.outerAfter = sampleContext();
      await nextImmediate();
      seen.outerLater = sampleContext();
      return inner;
    });
    extraRoutes(app);
    await listen(app);
  }

  afterEach(async () => {
    await app?.close();
  });

  test('every point of a request carries its route pattern (with prefix) and method, across awaits, concurrently', async () => {
    await buildApp();
    startProfiler(labels);
    expect(labels.mode).toBe(mode);
    const responses = await Promise.all([httpRequest(app, '/users/1'), httpRequest(app, '/users/2'), httpRequest(app, '/users/3')]);
    expect(responses.map((r) => r.statusCode)).toEqual([200, 200, 200]);
    stopProfiler(labels);
    const expected = { route: '/users/:id', method: 'GET' };
    for (const id of [1, 2, 3]) {
      expect(seen[`start /users/${id}`]).toEqual(expected);
      expect(seen[`after timer /users/${id}`]).toEqual(expected);
      expect(seen[`end /users/${id}`]).toEqual(expected);
    }
    // One shared frozen object per route+method, not one per request.
    expect(seen['end /users/1']).toBe(seen['end /users/3']);
    expect(Object.isFrozen(seen['end /users/1'])).toBe(true);
  });

  test('404: one constant route value, never the URL; profiling:false: no labels; static labels added, bad names dropped and counted', async () => {
    await buildApp();
    startProfiler(labels);
    await httpRequest(app, '/no/such/path?x=1');
    await httpRequest(app, '/v1/health');
    await httpRequest(app, '/v1/pay', 'POST');
    stopProfiler(labels);
    expect(seen.notFound).toEqual({ route: NOT_FOUND_ROUTE, method: 'GET' });
    expect(seen.health).toBeUndefined();
    expect(seen.pay).toEqual({ route: '/v1/pay', method: 'POST', team: 'payments' });
    // 'bad-name' came from a route config the registration check did not see: dropped, counted.
    expect(labels.stats().labelsInvalid).toBe(1);
  });

  test('labels.route / labels.method false leave those labels out', async () => {
    await buildApp({ route: false });
    startProfiler(labels);
    await httpRequest(app, '/users/9');
    await httpRequest(app, '/v1/pay', 'POST');
    stopProfiler(labels);
    expect(seen['end /users/9']).toEqual({ method: 'GET' });
    expect(seen.pay).toEqual({ method: 'POST', team: 'payments' });
  });

  test('withLabels nested in an async handler: inner labels on the inner work only, outer ones restored after', async () => {
    await buildApp();
    startProfiler(labels);
    const res = await httpRequest(app, '/nested');
    expect(res.body).toBe('inner done');
    stopProfiler(labels);
    const outer = { route: '/nested', method: 'GET' };
    expect(seen.outerBefore).toEqual(outer);
    expect(seen.innerStart).toEqual({ ...outer, tenant: 'acme' });
    // Innermost: merged with both outer levels; the inner tenant value replaced and sanitized.
    expect(seen.innerAfterAwait).toEqual({ ...outer, tenant: 'acme_co', step: 'charge' });
    expect(seen.innerEnd).toEqual({ ...outer, tenant: 'acme' });
    expect(seen.outerAfter).toEqual(outer);
    expect(seen.outerLater).toEqual(outer);
  });

  test('withLabels may set route and method: they replace the request\'s inside fn only; static route config still may not', async () => {
    await buildApp({}, (a) =>
      a.get('/ws-like', async () => {
        seen.explicitRoute = await labels.withLabels({ route: '/ws/chat', method: 'MESSAGE' }, async () => {
          await nextImmediate();
          return sampleContext();
        });
        seen.afterExplicit = sampleContext();
        return 'ok';
      }),
    );
    startProfiler(labels);
    await httpRequest(app, '/ws-like');
    stopProfiler(labels);
    expect(seen.explicitRoute).toEqual({ route: '/ws/chat', method: 'MESSAGE' });
    expect(seen.afterExplicit).toEqual({ route: '/ws-like', method: 'GET' });
    expect(validateStaticLabels('labels', { route: 'x' })).toMatch(/is set by the plugin itself/);
  });

  test('withLabels keeps concurrent requests apart', async () => {
    const results: Record<string, unknown[]> = {};
    await buildApp({}, (a) =>
      a.get('/tenant/:t', async (request) => {
        const t = (request.params as { t: string }).t;
        return labels.withLabels({ tenant: t }, async () => {
          const points: unknown[] = [];
          for (let i = 0; i < 5; i++) {
            await (i % 2 ? nextImmediate() : sleep(1));
            points.push(sampleContext());
          }
          results[t] = points;
          return 'ok';
        });
      }),
    );
    startProfiler(labels);
    await Promise.all(['a', 'b', 'c', 'd'].map((t) => httpRequest(app, `/tenant/${t}`)));
    stopProfiler(labels);
    for (const t of ['a', 'b', 'c', 'd']) {
      expect(results[t]).toEqual(Array(5).fill({ route: '/tenant/:t', method: 'GET', tenant: t }));
    }
  });

  test('the total number of labels per sample is bounded; what did not fit is counted', async () => {
    let inside: unknown;
    await buildApp({ maxLabelsPerSample: 3 }, (a) =>
      a.get('/many', async () =>
        labels.withLabels({ a: '1', b: '2', c: '3' }, async () => {
          await nextImmediate();
          inside = sampleContext();
        }),
      ),
    );
    startProfiler(labels);
    await httpRequest(app, '/many');
    stopProfiler(labels);
    expect(inside).toEqual({ route: '/many', method: 'GET', a: '1' });
    expect(labels.stats().labelsOverLimit).toBe(2);
  });

  test('work outside any request carries no route; requests begun before activation stay unlabelled, never mislabelled', async () => {
    const gate = new Gate();
    let earlyContext: unknown = 'not recorded';
    await buildApp({}, (a) =>
      a.get('/early', async () => {
        await gate.wait();
        await nextImmediate();
        earlyContext = sampleContext();
        return 'ok';
      }),
    );
    const early = httpRequest(app, '/early');
    await gate.reached; // the /early request began before activation and waits on the gate
    startProfiler(labels);
    const outside = await new Promise<unknown>((resolve) => setImmediate(() => resolve(sampleContext())));
    const late = httpRequest(app, '/users/7');
    gate.open();
    await Promise.all([early, late]);
    stopProfiler(labels);
    expect(outside).toBeUndefined();
    expect(earlyContext).toBeUndefined();
    expect(seen['end /users/7']).toEqual({ route: '/users/:id', method: 'GET' });
  });

  test('after deactivate, requests pass through and the engine is never touched again (time.stop then does not throw)', async () => {
    const gate = new Gate();
    await buildApp({}, (a) =>
      a.get('/gated', async () => {
        await gate.wait();
        return labels.withLabels({ tenant: 'acme' }, async () => {
          await nextImmediate();
          return 'inner done';
        });
      }),
    );
    startProfiler(labels);
    const pending = httpRequest(app, '/gated');
    await gate.reached; // labelled request in flight across the stop
    labels.deactivate();
    const setContext = jest.spyOn(time, 'setContext');
    const runWithContext = jest.spyOn(time, 'runWithContext');
    time.stop(false, labels.generateLabels);
    gate.open();
    const res = await pending;
    expect(res.body).toBe('inner done');
    await httpRequest(app, '/users/5');
    expect(setContext).not.toHaveBeenCalled();
    expect(runWithContext).not.toHaveBeenCalled();
    expect(labels.stats()).toEqual(expect.objectContaining({ active: false, engineErrors: 0 }));
  });

  test('real samples: a burn inside withLabels carries the inner labels, the burn after it only the route', async () => {
    const burnInner = freshBurner('burnInner');
    const burnOuter = freshBurner('burnOuter');
    await buildApp({}, (a) =>
      a.get('/burn', async () => {
        await labels.withLabels({ tenant: 'acme' }, async () => {
          await nextImmediate();
          burnInner(BURN_SAMPLES);
        });
        await nextImmediate();
        burnOuter(BURN_SAMPLES);
        return 'ok';
      }),
    );
    startProfiler(labels);
    await httpRequest(app, '/burn');
    const profile = stopProfiler(labels);
    // one object, so that a failure shows both burns at once ([] = no sample in that burner)
    expect({ inner: distinctLabels(labelsOfSamplesIn(profile, 'burnInner')), outer: distinctLabels(labelsOfSamplesIn(profile, 'burnOuter')) }).toEqual({
      inner: [{ route: '/burn', method: 'GET', tenant: 'acme' }],
      outer: [{ route: '/burn', method: 'GET' }],
    });
  });
});

describe('async-hooks mode between sessions', () => {
  test('ending the session releases the AsyncLocalStorage (its promise hooks would tax every later await); the next session labels again', async () => {
    const labels = new RequestLabels({ ...DEFAULTS, forceMode: 'async-hooks' });
    const seen: unknown[] = [];
    const app = Fastify();
    app.addHook('onRequest', labels.onRequest);
    app.get('/users/:id', async () => {
      await nextImmediate();
      seen.push(time.isStarted() ? sampleContext() : 'no session');
      return 'ok';
    });
    await listen(app);
    try {
      const disable = jest.spyOn(asyncHooks.AsyncLocalStorage.prototype, 'disable');
      for (let session = 0; session < 2; session++) {
        startProfiler(labels);
        expect((await httpRequest(app, '/users/7')).statusCode).toBe(200);
        expect(disable).not.toHaveBeenCalled();
        stopProfiler(labels);
        expect(disable).toHaveBeenCalledTimes(1);
        disable.mockClear();
        // between sessions: requests are served as usual
        expect((await httpRequest(app, '/users/8')).statusCode).toBe(200);
      }
      const labelled = { route: '/users/:id', method: 'GET' };
      expect(seen).toEqual([labelled, 'no session', labelled, 'no session']);
    } finally {
      await app.close();
    }
  });
});

/** The real engine, counting runWithContext calls (each one makes a new native holder in CPED mode). */
function countingEngine(overrides: Partial<ContextEngine> = {}): ContextEngine & { runWithContextCalls: number } {
  const engine = {
    runWithContextCalls: 0,
    setContext: time.setContext,
    getContext: time.getContext,
    isStarted: time.isStarted,
    getState: time.getState,
    runWithContext: ((context: object, f: (...args: unknown[]) => unknown, ...args: unknown[]) => {
      engine.runWithContextCalls++;
      return time.runWithContext(context, f, ...args);
    }) as ContextEngine['runWithContext'],
    ...overrides,
  };
  return engine;
}

const describeCped = asyncContextFrameActive() ? describe : describe.skip;

describeCped('cped mode keeps one engine holder per route label set', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function routesApp(labels: RequestLabels, seen: unknown[]): Promise<FastifyInstance> {
    app = Fastify();
    app.addHook('onRequest', labels.onRequest);
    for (const path of ['/a/:id', '/b']) {
      app.get(path, async () => {
        await sleep(1);
        seen.push(sampleContext());
        await nextImmediate();
        seen.push(sampleContext());
        return 'ok';
      });
    }
    app.get('/w', async () => labels.withLabels({ tenant: 'acme' }, async () => {
      await nextImmediate();
      seen.push(sampleContext());
      return 'ok';
    }));
    await listen(app);
    return app;
  }

  test('concurrent requests are labelled exactly while the engine makes a holder per route, not per request; anew each session', async () => {
    const engine = countingEngine();
    const labels = new RequestLabels({ ...DEFAULTS, forceMode: 'cped', engine });
    const seen: unknown[] = [];
    const server = await routesApp(labels, seen);
    for (const session of [1, 2]) {
      engine.runWithContextCalls = 0;
      seen.length = 0;
      startProfiler(labels);
      const paths = Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? `/a/${i}` : '/b'));
      const responses = await Promise.all(paths.map((p) => httpRequest(server, p)));
      expect(responses.every((r) => r.statusCode === 200)).toBe(true);
      stopProfiler(labels);
      expect(seen.filter((c) => (c as Labels | undefined)?.route === '/a/:id')).toHaveLength(30);
      expect(seen.filter((c) => (c as Labels | undefined)?.route === '/b')).toHaveLength(30);
      // probe + check at activation, then one holder for each of the two route label sets
      expect(engine.runWithContextCalls).toBe(2 + 2);
    }
  });

  test('withLabels sets (new each call) still go through runWithContext, and stay exact', async () => {
    const engine = countingEngine();
    const labels = new RequestLabels({ ...DEFAULTS, forceMode: 'cped', engine });
    const seen: unknown[] = [];
    const server = await routesApp(labels, seen);
    startProfiler(labels);
    engine.runWithContextCalls = 0;
    const responses = await Promise.all(Array.from({ length: 10 }, () => httpRequest(server, '/w')));
    stopProfiler(labels);
    expect(responses.every((r) => r.statusCode === 200)).toBe(true);
    expect(seen).toEqual(Array.from({ length: 10 }, () => ({ route: '/w', method: 'GET', tenant: 'acme' })));
    // one holder for the route set, then one runWithContext per withLabels call
    expect(engine.runWithContextCalls).toBe(1 + 10);
  });

  test('an engine whose store cannot be checked: every request goes through runWithContext, labels still exact', async () => {
    // getContext answering nothing makes the activation check fail
    const engine = countingEngine({ getContext: () => undefined });
    const propagator = new CpedPropagator(engine);
    time.start({ intervalMicros: 1000, durationMillis: 20_000, withContexts: true, useCPED: true });
    propagator.enable();
    const route: Labels = Object.freeze({ route: '/x' });
    engine.runWithContextCalls = 0;
    const got = await Promise.all(
      Array.from({ length: 5 }, () =>
        propagator.run(
          route,
          async () => {
            await nextImmediate();
            return sampleContext();
          },
          true,
        ),
      ),
    );
    expect(got).toEqual(Array.from({ length: 5 }, () => route));
    expect(engine.runWithContextCalls).toBe(5);
    propagator.disable();
    time.stop(false);
  });

  test('the probe puts AsyncLocalStorage.prototype.run back as it was, and holders are made anew after disable()', () => {
    const before = Object.getOwnPropertyDescriptor(asyncHooks.AsyncLocalStorage.prototype, 'run');
    const engine = countingEngine();
    const propagator = new CpedPropagator(engine);
    const route: Labels = Object.freeze({ route: '/x' });
    time.start({ intervalMicros: 1000, durationMillis: 20_000, withContexts: true, useCPED: true });
    for (let session = 0; session < 2; session++) {
      propagator.enable();
      expect(Object.getOwnPropertyDescriptor(asyncHooks.AsyncLocalStorage.prototype, 'run')).toEqual(before);
      engine.runWithContextCalls = 0;
      for (let i = 0; i < 3; i++) expect(propagator.run(route, sampleContext, true)).toBe(route);
      expect(engine.runWithContextCalls).toBe(1); // one holder made, then kept; made again in the next session
      propagator.disable();
    }
    time.stop(false);
  });
});

describe('a broken contract never throws into the app', () => {
  test('async-hooks mode: an engine refusing setContext turns labelling off, counted, instead of throwing from the hook', async () => {
    const state = new Uint32Array(8);
    let refuse = false;
    const handed: unknown[] = [];
    const engine: ContextEngine = {
      getState: () => state,
      isStarted: () => true,
      setContext: (context?: object) => {
        if (refuse) throw new Error('Wall profiler is not started');
        handed.push(context);
      },
      getContext: () => undefined,
      runWithContext: () => {
        throw new Error('not used in this mode');
      },
    };
    const propagator = new AsyncHookPropagator(engine);
    propagator.enable();
    const a = Object.freeze({ route: '/a' });
    const b = Object.freeze({ route: '/b' });
    // No sample taken (count unchanged): the holder is rewritten in place, no engine call.
    propagator.run(a, () => undefined);
    expect(handed).toHaveLength(1);
    expect((handed[0] as LabelHolder).labels).toBeUndefined();
    // A sample took the holder: the next switch hands over a new one, the taken one keeps its labels.
    await propagator.run(a, async () => {
      const taken = handed[handed.length - 1] as LabelHolder;
      expect(taken.labels).toBe(a);
      state[time.constants.kSampleCount as number]++;
      await propagator.run(b, async () => {
        await nextImmediate();
        expect(taken.labels).toBe(a);
        expect((handed[handed.length - 1] as LabelHolder).labels).toBe(b);
      });
      // Engine gone: the next hand-over fails; no throw reaches the callback or the hook.
      refuse = true;
      state[time.constants.kSampleCount as number]++;
      await nextImmediate();
    });
    expect(propagator.engineErrors).toBe(1);
    propagator.disable();
  });

  test('cped mode: a profiler started without useCPED -> requests served unlabelled, counted, nothing thrown', async () => {
    if (!asyncContextFrameActive()) return; // CPED needs AsyncContextFrame (Node 24)
    const labels = new RequestLabels({ ...DEFAULTS, forceMode: 'cped' });
    const app = Fastify();
    app.addHook('onRequest', labels.onRequest);
    app.get('/x', async () => labels.withLabels({ tenant: 'acme' }, async () => 'ok'));
    await listen(app);
    time.start({ intervalMicros: 1000, durationMillis: 20_000, withContexts: true, useCPED: false });
    labels.activate();
    const res = await httpRequest(app, '/x');
    expect(res).toEqual({ statusCode: 200, body: 'ok' });
    expect(labels.stats().engineErrors).toBe(1);
    stopProfiler(labels);
    await app.close();
  });

  test('async-hooks mode: the engine stopped without deactivate() -> requests still served, no crash', async () => {
    const labels = new RequestLabels({ ...DEFAULTS, forceMode: 'async-hooks' });
    const app = Fastify();
    app.addHook('onRequest', labels.onRequest);
    app.get('/x', async () => {
      await nextImmediate();
      return 'ok';
    });
    await listen(app);
    startProfiler(labels);
    time.stop(false); // wrong order: deactivate() skipped
    const res = await httpRequest(app, '/x');
    expect(res.statusCode).toBe(200);
    labels.deactivate();
    await app.close();
  });
});

// -------------------------------------------------------------------------------------------------
// Type checks for the route config augmentation (compiled by ts-jest with diagnostics on)

test('FastifyContextConfig types config.profiling as false or { labels }', async () => {
  const app = Fastify();
  app.get('/a', { config: { profiling: false } }, async () => 'a');
  app.get('/b', { config: { profiling: { labels: { team: 'payments' } } } }, async () => 'b');
  // Route shorthands infer their own ContextConfig generic, so wrong shapes are checked on the interface:
  // @ts-expect-error profiling takes false or { labels }
  const wrongShape: FastifyContextConfig = { profiling: 'off' };
  // @ts-expect-error label values are strings
  const wrongValue: FastifyContextConfig = { profiling: { labels: { team: 1 } } };
  expect([wrongShape, wrongValue]).toHaveLength(2);
  await app.ready();
  await app.close();
});

// -------------------------------------------------------------------------------------------------
// helpers

/** Holds a handler until open(); `reached` resolves once a handler waits on it. */
class Gate {
  private openGate!: () => void;
  private signalReached!: () => void;
  private readonly opened = new Promise<void>((resolve) => (this.openGate = resolve));
  readonly reached = new Promise<void>((resolve) => (this.signalReached = resolve));

  wait(): Promise<void> {
    this.signalReached();
    return this.opened;
  }

  open(): void {
    this.openGate();
  }
}

/**
 * Samples each burner waits for. A burner stops on the engine's sample count, not on a wall
 * time: on this shared 2-core machine (load average 17 measured while running this file) a
 * 60 ms wall-clock burn could get no CPU, so no sample, at all.
 */
const BURN_SAMPLES = 20;
/** Bound on one burn when the engine takes no sample (a stuck sampler): the test then fails, it does not hang. */
const BURN_MAX_MS = 10_000;

/** Makes each freshBurner's source unique (see there). */
let burnerSerial = 0;

/**
 * A CPU burner named `name`, new code each call, so that its optimized code is made during the
 * session that samples it. It runs until the engine has taken `samples` samples since it began
 * (all on its stack but GC: it holds the thread), or BURN_MAX_MS.
 *
 * Why new code: V8 enters a long loop through on-stack-replacement (OSR) code, which it keeps
 * only on the function's feedback vector, and when a CPU profiler starts it logs the existing
 * code of functions but not code held only there (v8 src/logging/log.cc,
 * EnumerateCompiledFunctions: "we will not log optimized code objects that are only on a type
 * feedback vector"). A session started after that code was made cannot name its frames: their
 * samples go to the caller. `new Function` with the same source does not give new code either:
 * V8's eval cache hands back the same SharedFunctionInfo and feedback cell, OSR code included.
 * With one constant source, the second mode's session here (async-hooks after cped) had no
 * sample in burnInner/burnOuter on Node 26.12 (0 of ~100 samples; it passed with --no-use-osr,
 * and with the mode order swapped the cped one failed). Node 24 passed only because it made new
 * OSR code during that session too. So the source carries a serial number: an eval-cache miss,
 * new code, compiled while sampled.
 */
function freshBurner(name: string): (samples: number) => number {
  burnerSerial++;
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  const burn = new Function(
    `// burner ${burnerSerial}: unique source, so V8's eval cache gives new code (see freshBurner)
    return function ${name}(state, countIndex, samples, maxMs) {
      const from = state[countIndex];
      const end = Date.now() + maxMs;
      let x = 1;
      while (state[countIndex] - from < samples && Date.now() < end) {
        for (let i = 0; i < 10000; i++) x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      }
      return x;
    };`,
  )() as (state: Uint32Array, countIndex: number, samples: number, maxMs: number) => number;
  // the engine's live state array: its sample count goes up at each sample, read without a call
  return (samples) => burn(time.getState() as Uint32Array, time.constants.kSampleCount as number, samples, BURN_MAX_MS);
}

/** The distinct label sets of `labels` (whatever the order of their names), in a stable order. */
function distinctLabels(labels: Record<string, string>[]): Record<string, string>[] {
  const keys = new Set(labels.map((l) => JSON.stringify(Object.entries(l).sort(([a], [b]) => (a < b ? -1 : 1)))));
  return [...keys].sort().map((key) => Object.fromEntries(JSON.parse(key) as [string, string][]));
}

/** The string labels of every sample whose stack contains `functionName`. */
function labelsOfSamplesIn(profile: Profile, functionName: string): Record<string, string>[] {
  const strings = profile.stringTable.strings;
  const fnIds = new Set(profile.function.filter((f) => strings[Number(f.name)] === functionName).map((f) => String(f.id)));
  const locIds = new Set(profile.location.filter((l) => l.line.some((line) => fnIds.has(String(line.functionId)))).map((l) => String(l.id)));
  return profile.sample
    .filter((s) => s.locationId.some((id) => locIds.has(String(id))))
    .map((s) => Object.fromEntries(s.label.map((l) => [strings[Number(l.key)]!, strings[Number(l.str)]!])));
}
