import { Writable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { time } from '@datadog/pprof';
import profilingPlugin, { ProfilerAlreadyActiveError, ProfilingOptionError } from '../src';
import { expectedLabelMode, NODE_MAJOR } from './helpers/node-line';

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A Fastify app whose pino output is captured, parsed. */
function appWithLogs(): { app: FastifyInstance; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(JSON.parse(line));
      cb();
    },
  });
  return { app: Fastify({ logger: { level: 'info', stream } }), lines };
}

const valid = { appName: 'greet', outputDir: '/tmp/fcp-plugin-test', profileTypes: { cpu: true, wall: false, heap: false } };

afterEach(() => {
  expect(time.isStarted()).toBe(false);
});

describe('registration', () => {
  it('rejects ready() with a ProfilingOptionError naming the option, value and what is allowed', async () => {
    const app = Fastify();
    app.register(profilingPlugin, { ...valid, cpuThreshold: 1001 });
    await expect(app.ready()).rejects.toThrow(ProfilingOptionError);
    await expect(app.ready()).rejects.toThrow('Invalid option "cpuThreshold": got 1001; expected an integer from 0 to 1000');
    await app.close();
  });

  it('rejects unknown options', async () => {
    const app = Fastify();
    app.register(profilingPlugin, { ...valid, CpuThreshold: 0 } as never);
    await expect(app.ready()).rejects.toThrow(/Invalid option "CpuThreshold".*unknown option/);
    await app.close();
  });

  it('allows one active profiler per process, and a new one after the first closes', async () => {
    const first = Fastify();
    await first.register(profilingPlugin, valid);
    await first.ready();

    const second = Fastify();
    second.register(profilingPlugin, { ...valid, appName: 'other' });
    const error = await Promise.resolve(second.ready()).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ProfilerAlreadyActiveError);
    expect((error as ProfilerAlreadyActiveError).code).toBe('FST_CONTINUOUS_PROFILING_ALREADY_ACTIVE');
    expect((error as Error).message).toContain('"greet"');
    await second.close();

    await first.close();
    const third = Fastify();
    await third.register(profilingPlugin, valid);
    await third.ready();
    expect(third.profiler.state).toBe('idle');
    await third.close();
  });

  it('a failed registration releases the process slot', async () => {
    const bad = Fastify();
    bad.register(profilingPlugin, { ...valid, uploadRate: '15 sec' });
    await expect(bad.ready()).rejects.toThrow(ProfilingOptionError);
    await bad.close();
    const good = Fastify();
    await good.register(profilingPlugin, valid);
    await good.ready();
    await good.close();
  });

  it('enabled: false decorates a profiler that does nothing, and takes no slot', async () => {
    const off = Fastify();
    await off.register(profilingPlugin, { enabled: false });
    await off.ready();
    expect(off.profiler.state).toBe('idle');
    expect(off.profiler.start()).toBe(false);
    expect(off.profiler.withLabels({ a: 'b' }, () => 42)).toBe(42);
    expect(off.profiler.stats()).toMatchObject({ enabled: false, sessions: 0 });
    const on = Fastify();
    await on.register(profilingPlugin, valid);
    await on.ready();
    await on.close();
    await off.close();
  });

  it('registers no routes', async () => {
    const app = Fastify();
    const before = app.printRoutes();
    await app.register(profilingPlugin, valid);
    await app.ready();
    expect(app.printRoutes()).toBe(before);
    await app.close();
  });
});

describe('sessions through the decorator', () => {
  it('threshold not reached: idle after ready; start()/stop() run a session, logged at info', async () => {
    const { app, lines } = appWithLogs();
    await app.register(profilingPlugin, { ...valid, cpuThreshold: 999 });
    await app.ready();
    expect(app.profiler.state).toBe('idle');
    expect(typeof app.profiler.cpuUsage()).toBe('number');

    expect(app.profiler.start({ reason: 'investigating' })).toBe(true);
    expect(app.profiler.state).toBe('profiling');
    expect(app.profiler.start()).toBe(false);
    await app.profiler.stop();
    expect(app.profiler.state).toBe('idle');

    const started = lines.find((l) => l.msg.includes('session started'));
    expect(started).toMatchObject({ level: 30, reason: 'investigating' });
    expect(lines.some((l) => l.level === 30 && l.msg.includes('session ended (stopped manually)'))).toBe(true);
    expect(app.profiler.stats()).toMatchObject({ sessions: 1, state: 'idle' });
    await app.close();
    expect(app.profiler.state).toBe('closed');
  });

  it('threshold 0: profiling from ready, with the reason logged', async () => {
    const { app, lines } = appWithLogs();
    await app.register(profilingPlugin, { ...valid, cpuThreshold: 0 });
    await app.ready();
    expect(app.profiler.state).toBe('profiling');
    expect(lines.find((l) => l.msg.includes('session started'))?.reason).toBe('cpuThreshold is 0 (continuous)');
    await app.close();
  });

  test('on Node 22 in async-hooks mode, says once (info) that --experimental-async-context-frame gives the cheaper mode', async () => {
    const { app, lines } = appWithLogs();
    await app.register(profilingPlugin, { ...valid, cpuThreshold: 999 });
    await app.ready();
    const beforeSessions = lines.length;
    for (let session = 0; session < 2; session++) {
      expect(app.profiler.start()).toBe(true);
      await app.profiler.stop();
    }
    await app.close();
    const hints = lines.filter((l) => l.msg.includes('--experimental-async-context-frame'));
    if (NODE_MAJOR === 22 && expectedLabelMode() === 'async-hooks') {
      expect(hints).toHaveLength(1);
      expect(hints[0]).toMatchObject({ level: 30, labelMode: 'async-hooks', node: process.versions.node });
      expect(hints[0].msg).toContain('cheaper CPED mode');
      // said as the first session started (labels activate before its "session started" line), not at registration
      expect(lines.indexOf(hints[0])).toBeGreaterThanOrEqual(beforeSessions);
      expect(lines.indexOf(hints[0])).toBeLessThan(lines.findIndex((l) => l.msg.includes('session started')));
    } else {
      expect(hints).toEqual([]);
    }
  });
});

describe('package exports', () => {
  it('require() gives the plugin itself, with default and named exports', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const required = require('../src');
    expect(typeof required).toBe('function');
    expect(required.default).toBe(required);
    expect(required.fastifyContinuousProfiling).toBe(required);
    expect(required.ProfilingOptionError).toBe(ProfilingOptionError);
  });
});

describe('route config', () => {
  it('refuses an invalid config.profiling where the route is declared', async () => {
    const app = Fastify();
    await app.register(profilingPlugin, valid);
    expect(() => app.get('/pay', { config: { profiling: { labels: { 'bad-name': 'x' } } } }, async () => 'ok')).toThrow(
      /config\.profiling of route GET \/pay\.labels: label name "bad-name"/,
    );
    expect(() => app.get('/x', { config: { profiling: 'off' as never } }, async () => 'ok')).toThrow(/must be false or an object/);
    await app.close();
  });

  it('accepts profiling: false and static labels, and answers inject() requests', async () => {
    const app = Fastify();
    await app.register(profilingPlugin, { ...valid, cpuThreshold: 0 });
    app.get('/health', { config: { profiling: false } }, async () => 'ok');
    app.get('/pay', { config: { profiling: { labels: { team: 'payments' } } } }, async () => 'paid');
    await app.ready();
    expect((await app.inject('/health')).body).toBe('ok');
    expect((await app.inject('/pay')).body).toBe('paid');
    await app.close();
  });
});
