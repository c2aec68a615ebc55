import Fastify, { type FastifyContextConfig } from 'fastify';
import { expect, test } from 'tstyche';
import profilingPlugin, {
  fastifyContinuousProfiling,
  fromGoZeroConfig,
  type LastTrigger,
  type ProfilerState,
  type ProfilerStats,
  type CaptureType,
  type PprofEndpointsOptions,
  type TriggerCause,
  type ProfilingOptions,
} from '../../src';

const app = Fastify();

test('the plugin registers with typed options', () => {
  expect(app.register(profilingPlugin, { appName: 'greet', serverAddress: 'http://localhost:4040', cpuThreshold: 0, uploadRate: '15s' })).type.not.toRaiseError();
  expect(app.register(fastifyContinuousProfiling, { appName: 'greet', checkInterval: 10_000, profileTypes: { wall: true } })).type.not.toRaiseError();
  expect(app.register).type.not.toBeCallableWith(profilingPlugin, { appName: 'greet', cpuThreshold: '700' });
  expect(app.register).type.not.toBeCallableWith(profilingPlugin, { appName: 'greet', serverAddr: 'x' });
  expect<ProfilingOptions['uploadRate']>().type.toBe<string | number | undefined>();
});

test('triggers: thresholds take a number or false; stats say what started a session', () => {
  expect(
    app.register(profilingPlugin, { appName: 'greet', cpuThreshold: false, eventLoopThreshold: 900, heapThreshold: 800, memoryThreshold: false, cooldown: '10m', maxSessionsPerHour: 6 }),
  ).type.not.toRaiseError();
  expect(app.register).type.not.toBeCallableWith(profilingPlugin, { appName: 'greet', eventLoopThreshold: true });
  expect<ProfilingOptions['heapThreshold']>().type.toBe<number | false | undefined>();
  expect(app.profiler.stats().lastTrigger).type.toBe<LastTrigger | undefined>();
  expect<LastTrigger['signal']>().type.toBe<TriggerCause>();
  expect<TriggerCause>().type.toBe<'cpu' | 'eventLoop' | 'heap' | 'memory' | 'manual' | 'continuous'>();
  expect(app.profiler.stats().eventLoopUtilization).type.toBe<number>();
  expect(app.profiler.stats().sessionsHeldBack).type.toBe<{ cooldown: number; hourlyLimit: number }>();
});

test('app.profiler is typed through module augmentation', () => {
  expect(app.profiler.state).type.toBe<ProfilerState>();
  expect(app.profiler.cpuUsage()).type.toBe<number>();
  expect(app.profiler.start({ duration: 60_000, reason: 'deploy' })).type.toBe<boolean>();
  expect(app.profiler.stop()).type.toBe<Promise<void>>();
  expect(app.profiler.stats()).type.toBe<ProfilerStats>();
  expect(app.profiler.stats().dropped).type.toBe<number>();
});

test('withLabels returns what the function returns', () => {
  expect(app.profiler.withLabels({ tenant: 'acme' }, async () => 42)).type.toBe<Promise<number>>();
  expect(app.profiler.withLabels({ tenant: 'acme' }, () => 'x')).type.toBe<string>();
  expect(app.profiler.withLabels).type.not.toBeCallableWith({ tenant: 1 }, () => 1);
});

test('route config: profiling false or static labels', () => {
  expect(app.get('/health', { config: { profiling: false } }, async () => 'ok')).type.not.toRaiseError();
  expect(app.get('/pay', { config: { profiling: { labels: { team: 'payments' } } } }, async () => 'ok')).type.not.toRaiseError();
  // app.get infers its ContextConfig from the argument, so check the augmentation itself
  expect<FastifyContextConfig['profiling']>().type.toBe<false | { labels?: Record<string, string> } | undefined>();
  expect<FastifyContextConfig>().type.not.toBeAssignableFrom({ profiling: true });
  expect<FastifyContextConfig>().type.not.toBeAssignableFrom({ profiling: { labels: { team: 1 } } });
});

test('fromGoZeroConfig gives plugin options', () => {
  expect(fromGoZeroConfig({ ServerAddr: 'http://localhost:4040', CpuThreshold: 0 }, { name: 'greet' })).type.toBeAssignableTo<ProfilingOptions>();
});

test('pull mode: pprofEndpoints in either form, capture() and pprofUrl', () => {
  expect(app.register(profilingPlugin, { appName: 'greet', outputDir: 'p', pprofEndpoints: { listen: { port: 6060 } } })).type.not.toRaiseError();
  expect(
    app.register(profilingPlugin, {
      appName: 'greet',
      outputDir: 'p',
      pprofEndpoints: { prefix: '/debug/pprof', authorize: async (request) => request.headers.authorization === 'Bearer x', maxSeconds: 30 },
    }),
  ).type.not.toRaiseError();
  // the routes form needs authorize
  expect(app.register).type.not.toBeCallableWith(profilingPlugin, { appName: 'greet', pprofEndpoints: { prefix: '/debug/pprof' } });
  expect(app.register).type.not.toBeCallableWith(profilingPlugin, { appName: 'greet', pprofEndpoints: { listen: { port: '6060' } } });
  expect(app.profiler.capture({ type: 'cpu', seconds: 10 })).type.toBe<Promise<Buffer>>();
  expect(app.profiler.capture({ type: 'heap' })).type.toBe<Promise<Buffer>>();
  expect(app.profiler.capture).type.not.toBeCallableWith({ type: 'goroutine' });
  expect(app.profiler.pprofUrl).type.toBe<string | undefined>();
  expect<CaptureType>().type.toBe<'cpu' | 'wall' | 'heap'>();
  expect<PprofEndpointsOptions>().type.toBeAssignableFrom({ listen: { port: 0, host: '::1' } });
});
