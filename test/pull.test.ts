/**
 * Pull mode end to end: the /debug/pprof endpoints and app.profiler.capture() over the real
 * engine, real HTTP, real concurrent load, with `go tool pprof` (Debian golang-go) as the
 * client, while a push session uploads to a local Pyroscope stand-in.
 *
 * `go` is required: without it these tests fail and say so (CI installs golang-go).
 */
import { execFile, execFileSync } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { time } from '@datadog/pprof';
import autocannon from 'autocannon';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Profile } from 'pprof-format';
import profilingPlugin, { ProfileCaptureError, ProfilingOptionError } from '../src';
import { CpuUsageMeter } from '../src/cpu-usage';
import type { ProfilingOptions } from '../src/options';
import { loadReport } from '../src/report/read-profiles';
import { decodeProfile, IngestStandIn, sampleLabels, sampleTypeNames, selfValueByFunction, type RecordedUpload } from './helpers/ingest-stand-in';

// Plain arithmetic: inside Jest's VM context every `Math.*` lookup goes through the sandbox.
function simulateCPULoad(): number {
  let x = 0;
  for (let i = 0; i < 1_000_000; i++) x = (x + i * i) % 1_000_003;
  return x;
}

function goBinary(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v go'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const PPROF_TMPDIR = mkdtempSync(path.join(tmpdir(), 'fcp-pull-'));

/** `go tool pprof ARGS`: stdout, or a rejection with its stderr. */
function goPprof(args: string[]): Promise<string> {
  const go = goBinary();
  if (go === undefined) return Promise.reject(new Error('`go` is not installed: these tests need `go tool pprof` (Debian package golang-go; .ci/run installs it)'));
  return new Promise((resolve, reject) => {
    execFile(
      go,
      ['tool', 'pprof', ...args],
      { env: { ...process.env, PPROF_TMPDIR, HOME: process.env.HOME ?? PPROF_TMPDIR }, timeout: 60_000 },
      (error, stdout, stderr) => (error ? reject(new Error(`go tool pprof ${args.join(' ')} failed: ${error.message}\n${stderr}`)) : resolve(stdout)),
    );
  });
}

interface Got {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function profileOf(got: Got): Profile {
  const { profile, error } = decodeProfile(got.body);
  if (profile === undefined) throw new Error(`not a gzipped pprof body (${error}): ${got.body.subarray(0, 200).toString()}`);
  return profile;
}

const isGzip = (body: Buffer): boolean => body.length >= 2 && body[0] === 0x1f && body[1] === 0x8b;

function appUrl(app: FastifyInstance): string {
  const address = app.server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
}

function buildApp(options: ProfilingOptions): FastifyInstance {
  const app = Fastify({ logger: false });
  // only cpuThreshold and start() start sessions here: the event-loop, heap and memory triggers
  // would start one under the load these tests drive, and "no session" is what some of them need
  app.register(profilingPlugin, { appName: 'greet', eventLoopThreshold: false, heapThreshold: false, memoryThreshold: false, ...options });
  app.get('/ping', async () => {
    simulateCPULoad();
    return { msg: 'pong' };
  });
  return app;
}

function load(app: FastifyInstance, seconds: number, connections = 10): Promise<autocannon.Result> {
  return autocannon({ url: `${appUrl(app)}/ping`, connections, duration: seconds }) as unknown as Promise<autocannon.Result>;
}

function cpuNanos(profiles: Profile[]): number {
  return profiles.reduce((sum, p) => sum + selfValueByFunction(p, 'cpu').reduce((s, [, v]) => s + v, 0), 0);
}

const cpuUploads = (ingest: IngestStandIn): RecordedUpload[] =>
  ingest.uploads.filter((u) => sampleTypeNames(u.profile).includes('cpu/nanoseconds'));

afterEach(() => {
  jest.restoreAllMocks();
});

/**
 * Tests that need "no session" under the load they drive: cpuThreshold 999 is reached when the
 * load saturates the core (read 1000 ‰ on Node 26), so the usage reads 0 ‰ (restored afterEach).
 */
function noThresholdSessions(): void {
  jest.spyOn(CpuUsageMeter.prototype, 'measure').mockResolvedValue(0);
}

describe('go tool pprof against the listener while a push session runs', () => {
  let ingest: IngestStandIn;
  let app: FastifyInstance;
  let base: string;

  beforeAll(async () => {
    if (goBinary() === undefined) throw new Error('`go` is not installed: these tests need `go tool pprof` (Debian package golang-go)');
    ingest = await IngestStandIn.start();
    app = buildApp({ serverAddress: ingest.url, cpuThreshold: 0, uploadRate: '1s', pprofEndpoints: { listen: { port: 0 } } });
    expect(app.profiler).toBeUndefined(); // not registered yet
    await app.listen({ port: 0, host: '127.0.0.1' });
    expect(app.profiler.state).toBe('profiling');
    base = app.profiler.pprofUrl!;
  });

  afterAll(async () => {
    await app?.close();
    expect(app.profiler.pprofUrl).toBeUndefined();
    expect(time.isStarted()).toBe(false);
    await ingest?.close();
  });

  it('pprofUrl is the base URL of the listener, on loopback', () => {
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/debug\/pprof$/);
    expect(base).not.toContain(`:${new URL(appUrl(app)).port}/`);
  });

  it('-top profile?seconds=2 under load: simulateCPULoad in its top lines; the push engine is never started again', async () => {
    const starts = jest.spyOn(time, 'start');
    const uploadsBefore = cpuUploads(ingest).length;
    const [top, result] = await Promise.all([goPprof(['-top', `${base}/profile?seconds=2`]), load(app, 3)]);
    expect(result.non2xx).toBe(0);
    expect(top).toMatch(/Type: cpu/);
    const lines = top.split('\n');
    const header = lines.findIndex((l) => /flat\s+flat%/.test(l));
    expect(header).toBeGreaterThan(0);
    expect(lines.slice(header + 1, header + 4).join('\n')).toMatch(/simulateCPULoad/);
    expect(starts).not.toHaveBeenCalled(); // read from the running profiler
    await ingest.waitForUploads(ingest.uploads.length + 1, 5_000);
    expect(cpuUploads(ingest).length).toBeGreaterThan(uploadsBefore);
  });

  it('-top heap works (inuse_space)', async () => {
    const top = await goPprof(['-top', `${base}/heap`]);
    expect(top).toMatch(/Type: inuse_space/);
  });

  it('/profile answers gzipped pprof as application/octet-stream: samples + cpu, route labels kept', async () => {
    const [got] = await Promise.all([get(`${base}/profile?seconds=1`), load(app, 2, 5)]);
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toBe('application/octet-stream');
    expect(isGzip(got.body)).toBe(true);
    const profile = profileOf(got);
    expect(sampleTypeNames(profile)).toEqual(['samples/count', 'cpu/nanoseconds']);
    const routes = new Set(profile.sample.map((s) => sampleLabels(profile, s).route));
    expect(routes).toContain('/ping');
    expect(Number(profile.durationNanos)).toBeGreaterThanOrEqual(0.9e9);
    expect(Number(profile.durationNanos)).toBeLessThan(10e9);
  });

  it('/wall answers samples + wall; /heap inuse_objects + inuse_space; / an index', async () => {
    const wall = profileOf(await get(`${base}/wall?seconds=1`));
    expect(sampleTypeNames(wall)).toEqual(['samples/count', 'wall/nanoseconds']);
    const heapProfile = profileOf(await get(`${base}/heap`));
    expect(sampleTypeNames(heapProfile)).toEqual(['inuse_objects/count', 'inuse_space/bytes']);
    expect(heapProfile.sample.length).toBeGreaterThan(0);
    for (const url of [base, `${base}/`]) {
      const index = await get(url);
      expect(index.status).toBe(200);
      expect(index.headers['content-type']).toMatch(/text\/html/);
      expect(index.body.toString()).toMatch(/profile\?seconds=30.*wall.*heap/s);
    }
  });

  it.each(['0', '-1', 'abc', '100000', '1.5', '61', ''])('seconds=%j: 400 with a message, nothing captured', async (seconds) => {
    const before = time.isStarted();
    const got = await get(`${base}/profile?seconds=${seconds}`);
    expect(got.status).toBe(400);
    expect(got.body.toString()).toMatch(/seconds must be a whole number from 1 to 60/);
    expect(isGzip(got.body)).toBe(false);
    expect(time.isStarted()).toBe(before);
  });

  it('unknown paths: 404; other methods: 405', async () => {
    expect((await get(`${base}/goroutine`)).status).toBe(404);
    expect((await get(`${base.replace('/debug/pprof', '')}/ping`)).status).toBe(404);
    expect((await get(`${base}/profile?seconds=1`, {}, 'POST')).status).toBe(405);
  });

  it('concurrent captures share the running engine, each with its own samples; a fifth gets 429 with Retry-After', async () => {
    const starts = jest.spyOn(time, 'start');
    const loading = load(app, 3, 5);
    const four = [1, 2, 2, 2].map((s) => get(`${base}/profile?seconds=${s}`));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const fifth = await get(`${base}/profile?seconds=1`);
    expect(fifth.status).toBe(429);
    expect(Number(fifth.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(isGzip(fifth.body)).toBe(false);
    const answers = await Promise.all(four);
    await loading;
    for (const got of answers) {
      expect(got.status).toBe(200);
      expect(cpuNanos([profileOf(got)])).toBeGreaterThan(0);
    }
    // the 1 s capture ended first: its samples are its own, fewer than the 2 s ones'
    expect(Number(profileOf(answers[0]).durationNanos)).toBeLessThan(Number(profileOf(answers[1]).durationNanos));
    expect(starts).not.toHaveBeenCalled();
    expect(app.profiler.state).toBe('profiling');
  });

  it('every upload of the push session was accepted', () => {
    const s = app.profiler.stats();
    expect(s.uploadsFailed).toBe(0);
    expect(s.dropped).toBe(0);
    expect(s.engineErrors).toBe(0);
    expect(ingest.requests.every((r) => r.behavior === 'ok')).toBe(true);
    // the go tool, /profile, /wall, /heap scrapes and the four concurrent ones; the fifth refused
    expect(s.pull).toMatchObject({ capturesRunning: 0, capturesRefused: 1, capturesFailed: 0 });
    expect(s.pull.captures).toBeGreaterThanOrEqual(9);
  });
});

describe('a scrape in the middle of a continuous push session', () => {
  /**
   * CPU the push uploads account for, over the CPU the process really used, for one run of
   * 5 s of load; with `scrape`, a 3 s /profile capture runs in the middle of it.
   */
  async function pushedShareOfCpu(scrape: boolean, loadSeconds = 5): Promise<{ share: number; capturedCpu: number; pushedCpu: number; uploads: number }> {
    const ingest = await IngestStandIn.start();
    const app = buildApp({ serverAddress: ingest.url, cpuThreshold: 0, uploadRate: '1s', pprofEndpoints: { listen: { port: 0 } } });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const cpuBefore = process.cpuUsage();
    const loading = load(app, loadSeconds);
    let captured: Got | undefined;
    if (scrape) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      captured = await get(`${app.profiler.pprofUrl}/profile?seconds=3`);
    }
    const result = await loading;
    await app.close();
    const used = process.cpuUsage(cpuBefore);
    expect(result.non2xx).toBe(0);
    const stats = app.profiler.stats();
    expect(stats.uploadsFailed).toBe(0);
    expect(stats.dropped).toBe(0);
    expect(ingest.requests.every((r) => r.behavior === 'ok')).toBe(true);
    expect(ingest.uploads.length).toBe(stats.uploadsOk);
    const pushedCpu = cpuNanos(cpuUploads(ingest).map((u) => u.profile));
    const uploads = cpuUploads(ingest).length;
    await ingest.close();
    return {
      share: pushedCpu / ((used.user + used.system) * 1000),
      capturedCpu: captured ? cpuNanos([profileOf(captured)]) : 0,
      pushedCpu,
      uploads,
    };
  }

  it('loses no push sample: the uploads account for as much of the CPU used as without the scrape', async () => {
    // the first run in a process pays for JIT and module warm-up the profiler does not see
    // (measured: share 0.67 cold, 0.95-0.96 warm)
    await pushedShareOfCpu(false, 2);
    const control = await pushedShareOfCpu(false);
    const scraped = await pushedShareOfCpu(true);
    // the capture got its own 3 s of samples...
    expect(scraped.capturedCpu).toBeGreaterThan(0);
    // ...which the push uploads hold as well (the same pieces), rather than lose them
    expect(scraped.pushedCpu).toBeGreaterThan(scraped.capturedCpu);
    // A capture that took its samples from the push windows would leave them ~60 % short; the
    // band is wide because the VM's speed moves between runs.
    const ratio = scraped.share / control.share;
    expect(ratio).toBeGreaterThan(0.7);
    // Counted twice, the capture's 3 s would make the uploads hold more CPU than the process
    // used (about 1.5x). The CPU values are the main thread's CPU time between samples, never
    // more than the whole process's, whatever the machine's load: no noise in this bound (a
    // bound on the ratio to the control run failed at 1.52 and 1.60 on a busy machine).
    expect(scraped.share).toBeLessThan(1.05);
    expect(scraped.uploads).toBeGreaterThanOrEqual(3);
  }, 60_000);
});

describe('routes on the app', () => {
  let open: FastifyInstance | undefined;
  afterEach(async () => {
    await open?.close(); // a failed test must not keep the process's profiler slot
    open = undefined;
  });

  it('without authorize: registration fails naming pprofEndpoints.authorize', async () => {
    const app = Fastify();
    app.register(profilingPlugin, { appName: 'greet', outputDir: '/tmp/fcp-pull', pprofEndpoints: { prefix: '/debug/pprof' } as never });
    const error = await Promise.resolve(app.ready()).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ProfilingOptionError);
    expect((error as ProfilingOptionError).option).toBe('pprofEndpoints.authorize');
    expect((error as Error).message).toMatch(/Invalid option "pprofEndpoints.authorize": got undefined; expected a function \(request\) => boolean/);
    await app.close();
  });

  const allow = (): boolean => true;
  it.each<[unknown, string, RegExp]>([
    [{ listen: { port: 6060, host: '0.0.0.0' } }, 'pprofEndpoints.authorize', /not a loopback address/],
    [{ listen: { port: 6060 }, prefix: '/x', authorize: allow }, 'pprofEndpoints', /not both/],
    [{ listen: { port: -1 } }, 'pprofEndpoints.listen.port', /integer TCP port/],
    [{ prefix: 'debug', authorize: allow }, 'pprofEndpoints.prefix', /a path such as/],
    [{ prefix: '/debug/pprof', authorize: 'yes' }, 'pprofEndpoints.authorize', /a function/],
    [{ listen: { port: 0 }, maxSeconds: 0 }, 'pprofEndpoints.maxSeconds', /integer from 1 to 3600/],
    [{ listen: { port: 0 }, seconds: 5 }, 'pprofEndpoints.seconds', /known key/],
    ['on', 'pprofEndpoints', /listen: \{ port, host\? \}/],
  ])('refuses %j, naming %s', async (pprofEndpoints, option, message) => {
    const app = Fastify();
    app.register(profilingPlugin, { appName: 'greet', outputDir: '/tmp/fcp-pull', pprofEndpoints: pprofEndpoints as never });
    const error = await Promise.resolve(app.ready()).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ProfilingOptionError);
    expect((error as ProfilingOptionError).option).toBe(option);
    expect((error as Error).message).toMatch(message);
    await app.close();
  });

  it('wrong or missing credentials: 401/403 without profile bytes or hints; right ones: the profile; pprofUrl once listening', async () => {
    noThresholdSessions();
    const authorize = jest.fn(async (request: { headers: Record<string, unknown> }) => request.headers.authorization === 'Bearer good');
    const app = (open = buildApp({ outputDir: '/tmp/fcp-pull', cpuThreshold: 999, pprofEndpoints: { prefix: '/internal/pprof/', authorize } }));
    await app.ready();
    expect(app.profiler.pprofUrl).toBeUndefined();
    await app.listen({ port: 0, host: '127.0.0.1' });
    const base = app.profiler.pprofUrl!;
    expect(base).toBe(`${appUrl(app)}/internal/pprof`);

    for (const [headers, status] of [
      [{}, 401],
      [{ authorization: 'Bearer bad' }, 403],
    ] as const) {
      for (const p of ['/profile?seconds=1', '/heap', '/', '/profile?seconds=abc']) {
        const got = await get(`${base}${p}`, headers);
        expect(got.status).toBe(status);
        expect(isGzip(got.body)).toBe(false);
        expect(got.body.toString()).not.toMatch(/profil|cpu|heap|seconds|session|pprof/i);
      }
    }
    expect(time.isStarted()).toBe(false); // refused calls started nothing

    const [got] = await Promise.all([get(`${base}/profile?seconds=1`, { authorization: 'Bearer good' }), load(app, 2, 4)]);
    expect(got.status).toBe(200);
    const profile = profileOf(got);
    expect(sampleTypeNames(profile)).toEqual(['samples/count', 'cpu/nanoseconds']);
    expect(profile.sample.some((s) => sampleLabels(profile, s).route === '/ping')).toBe(true);
    expect(time.isStarted()).toBe(false); // no session: the capture ran the engine for its duration only
    expect(app.profiler.state).toBe('idle');
    expect((await get(`${base}/profile?seconds=0`, { authorization: 'Bearer good' })).status).toBe(400);
    expect(authorize).toHaveBeenCalled();

    await app.close();
    expect(app.profiler.pprofUrl).toBeUndefined();
  });

  it('an authorize that throws refuses the call (403)', async () => {
    const app = (open = buildApp({
      outputDir: '/tmp/fcp-pull',
      cpuThreshold: 999,
      pprofEndpoints: {
        authorize: () => {
          throw new Error('auth backend down');
        },
      },
    }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const got = await get(`${app.profiler.pprofUrl}/heap`, { authorization: 'Basic x' });
    expect(got.status).toBe(403);
    expect(got.body.toString()).not.toMatch(/auth backend/);
    await app.close();
  });
});

describe('capture() and the session', () => {
  let open: FastifyInstance | undefined;
  const track = (app: FastifyInstance): FastifyInstance => (open = app);
  afterEach(async () => {
    await open?.close(); // a failed test must not keep the process's profiler slot
    open = undefined;
  });

  it('with no session, a capture runs the engine for its duration only; a push session can start and stop meanwhile', async () => {
    noThresholdSessions();
    const app = track(buildApp({ outputDir: '/tmp/fcp-pull', cpuThreshold: 999 }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    expect(time.isStarted()).toBe(false);
    const capturing = app.profiler.capture({ type: 'cpu', seconds: 4 });
    expect(time.isStarted()).toBe(true);
    const loading = load(app, 1, 4);
    expect(app.profiler.start({ reason: 'during a capture' })).toBe(true); // joins, no second engine
    await loading;
    await app.profiler.stop();
    expect(time.isStarted()).toBe(true); // the capture still samples
    const profile = decodeProfile(await capturing).profile!;
    expect(time.isStarted()).toBe(false);
    // by route label, not by function name: code V8 optimized before this engine start can show
    // up as "(anonymous:L#..)" (README, Troubleshooting), and earlier tests here ran /ping a lot
    const sum = (entries: Array<[string, number]>): number => entries.reduce((s, [, v]) => s + v, 0);
    const ping = sum(selfValueByFunction(profile, 'cpu', (labels) => labels.route === '/ping'));
    const busy = sum(selfValueByFunction(profile, 'cpu').filter(([name]) => name !== '(idle)'));
    expect(ping).toBeGreaterThan(0.25 * busy);
    expect(app.profiler.stats()).toMatchObject({ sessions: 1, engineErrors: 0 });
    await app.close();
  });

  it('bad arguments reject with a ProfileCaptureError (400), never throw', async () => {
    const app = track(buildApp({ outputDir: '/tmp/fcp-pull', cpuThreshold: 999 }));
    await app.ready();
    for (const bad of [{ type: 'cpu', seconds: 0 }, { type: 'cpu', seconds: 1.5 }, { type: 'cpu', seconds: 61 }, { type: 'goroutine' }, null]) {
      const error = await app.profiler.capture(bad as never).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(ProfileCaptureError);
      expect(error).toMatchObject({ status: 400, code: 'FST_CONTINUOUS_PROFILING_CAPTURE' });
    }
    expect(time.isStarted()).toBe(false);
    await app.close();
  });

  it('a heap capture without a running sampler samples for `seconds`, then stops it', async () => {
    // a 16 KiB sampling interval: about a hundred samples of what is kept, not three
    const app = track(buildApp({ outputDir: '/tmp/fcp-pull', cpuThreshold: 999, heapSamplingInterval: 16 * 1024, profileTypes: { cpu: true, wall: false, heap: false } }));
    await app.ready();
    const keep: number[][] = [];
    const capturing = app.profiler.capture({ type: 'heap', seconds: 1 });
    function keepForTheCapture(): void {
      for (let i = 0; i < 200; i++) keep.push(new Array(1000).fill(i));
    }
    keepForTheCapture();
    const captured = await capturing;
    const profile = decodeProfile(captured).profile!;
    expect(sampleTypeNames(profile)).toEqual(['inuse_objects/count', 'inuse_space/bytes']);
    expect(profile.sample.length).toBeGreaterThan(0);
    expect(keep.length).toBe(200);
    await app.close();

    // saved as a file, it reads in the report as the pushed heap files do
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'fcp-pull-heap-')), 'capture.heap.pb.gz');
    writeFileSync(file, captured);
    const report = await loadReport([file]);
    expect(report.heap).toBeDefined();
    expect(report.sampleType).toEqual({ type: 'inuse_space', unit: 'bytes' });
    // the top JavaScript function (beside it, in a Jest worker: '(external)', what V8 itself allocated)
    const top = report.routes[0]!.functions.find((f) => f.location !== '')!;
    expect([top.name, top.location]).toEqual(['keepForTheCapture', expect.stringMatching(/^test\/pull\.test\.ts:\d+$/)]);
    // 200 arrays of 1000 small integers (8 KB each on the heap, 1.6 MB): sampled, so roughly
    expect(top.self).toBeGreaterThan(1_100_000);
    expect(top.self).toBeLessThan(2_300_000);
  });

  it('enabled: false: capture() rejects (503), pprofUrl is undefined, no route is registered', async () => {
    const app = track(Fastify());
    await app.register(profilingPlugin, { enabled: false, pprofEndpoints: { authorize: () => true } });
    await app.ready();
    expect(app.profiler.pprofUrl).toBeUndefined();
    await expect(app.profiler.capture({ type: 'cpu', seconds: 1 })).rejects.toMatchObject({ status: 503 });
    expect(app.printRoutes()).not.toContain('pprof');
    await app.close();
  });

  it('app.close() during a 60 s capture returns within flushTimeout; the caller gets what was collected', async () => {
    const app = track(buildApp({ outputDir: '/tmp/fcp-pull', cpuThreshold: 0, flushTimeout: '1s', pprofEndpoints: { listen: { port: 0 } } }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const answer = get(`${app.profiler.pprofUrl}/profile?seconds=60`);
    const programmatic = app.profiler.capture({ type: 'wall', seconds: 60 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const started = Date.now();
    await app.close();
    // generous: flushTimeout is 1 s, the capture would otherwise hold on for 60 s
    expect(Date.now() - started).toBeLessThan(5_000);
    const got = await answer;
    expect([200, 503]).toContain(got.status);
    if (got.status === 200) expect(Number(profileOf(got).durationNanos)).toBeLessThan(30e9);
    const wall = decodeProfile(await programmatic).profile!;
    expect(Number(wall.durationNanos)).toBeLessThan(30e9);
    expect(time.isStarted()).toBe(false);
    await expect(app.profiler.capture({ type: 'cpu', seconds: 1 })).rejects.toMatchObject({ status: 503 });
  });
});
