/**
 * End to end over real HTTP: a Fastify app on port 0 with a CPU-hot /ping, the plugin with
 * cpuThreshold 0 and uploadRate 1s, real concurrent load, and a local stand-in for Pyroscope's
 * ingest that decodes every upload. Asserts what Pyroscope would store.
 */
import os from 'node:os';
import autocannon from 'autocannon';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Profile } from 'pprof-format';
import profilingPlugin, { fastifyContinuousProfiling } from '../src';
import { IngestStandIn, sampleLabels, sampleTypeNames, selfValueByFunction, type RecordedUpload } from './helpers/ingest-stand-in';

// Plain arithmetic: inside Jest's VM context every `Math.*` lookup goes through the sandbox
// global and makes this loop ~100x slower than in a real service.
function simulateCPULoad(): number {
  let x = 0;
  for (let i = 0; i < 1_000_000; i++) x = (x + i * i) % 1_000_003;
  return x;
}

function buildApp(): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get('/ping', async () => {
    simulateCPULoad();
    return { msg: 'pong' };
  });
  return app;
}

function kindOf(upload: RecordedUpload): 'cpu' | 'wall' | 'heap' | 'other' {
  const types = sampleTypeNames(upload.profile).map((t) => t.split('/')[0]);
  if (types.includes('cpu')) return 'cpu';
  if (types.includes('wall')) return 'wall';
  if (types.includes('inuse_space')) return 'heap';
  return 'other';
}

/** The function with the most self CPU time, among functions of user code (not Node internals). */
function hottestFunction(profiles: Profile[]): string {
  const totals = new Map<string, number>();
  for (const profile of profiles) {
    for (const [name, value] of selfValueByFunction(profile, 'cpu')) totals.set(name, (totals.get(name) ?? 0) + value);
  }
  return [...totals.entries()].filter(([name]) => !name.startsWith('(')).sort((a, b) => b[1] - a[1])[0][0];
}

describe('end to end: profiles arrive in Pyroscope', () => {
  let ingest: IngestStandIn;
  let app: FastifyInstance;
  let closeStartedAtSec = 0;

  beforeAll(async () => {
    ingest = await IngestStandIn.start();
    app = buildApp();
    await app.register(profilingPlugin, {
      appName: 'greet',
      serverAddress: ingest.url,
      tenantID: 'team-a',
      authToken: 'secret-token',
      headers: { 'x-extra': 'yes' },
      tags: { env: 'test', region: 'eu' },
      cpuThreshold: 0,
      uploadRate: '1s',
      profileTypes: { cpu: true, wall: true, heap: true },
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const result = await autocannon({ url: `http://127.0.0.1:${port}/ping`, connections: 20, duration: 3 });
    expect(result.non2xx).toBe(0);
    expect(result.errors).toBe(0);
    expect(result.requests.total).toBeGreaterThan(10);
    expect(app.profiler.state).toBe('profiling');
    closeStartedAtSec = Math.floor(Date.now() / 1000);
    await app.close();
    expect(app.profiler.state).toBe('closed');
  }, 60_000);

  afterAll(async () => {
    await ingest.close();
  });

  it('sends the ingest query parameters Pyroscope expects', () => {
    expect(ingest.uploads.length).toBeGreaterThanOrEqual(3);
    for (const upload of ingest.uploads) {
      expect(upload.method).toBe('POST');
      expect(upload.path).toBe('/ingest');
      expect(upload.name).toBe(`greet{env=test,region=eu,instance=${os.hostname()}/${process.pid}}`);
      expect(upload.query.format).toBe('pprof');
      expect(upload.query.spyName).toBe('nodespy');
      expect(upload.from).toBeLessThanOrEqual(upload.until!);
      expect(Math.abs(upload.until! - Date.now() / 1000)).toBeLessThan(120);
    }
  });

  it('delivers the final window on close()', () => {
    const cpu = ingest.uploads.filter((u) => kindOf(u) === 'cpu');
    const lastUntil = Math.max(...cpu.map((u) => u.until!));
    expect(lastUntil).toBeGreaterThanOrEqual(closeStartedAtSec);
  });

  it('sends auth, tenant and extra headers', () => {
    const headers = ingest.uploads[0].headers;
    expect(headers.authorization).toBe('Bearer secret-token');
    expect(headers['x-scope-orgid']).toBe('team-a');
    expect(headers['x-extra']).toBe('yes');
    expect(headers['content-type']).toBe('application/octet-stream');
  });

  it('sends a CPU profile (samples + cpu, stored as process_cpu) whose hottest function is simulateCPULoad', () => {
    const cpu = ingest.uploads.filter((u) => kindOf(u) === 'cpu');
    expect(cpu.length).toBeGreaterThanOrEqual(2);
    for (const u of cpu) expect(sampleTypeNames(u.profile)).toEqual(['samples/count', 'cpu/nanoseconds']);
    expect(hottestFunction(cpu.map((u) => u.profile))).toBe('simulateCPULoad');
  });

  it('labels the CPU samples of /ping with its route and method', () => {
    const cpu = ingest.uploads.filter((u) => kindOf(u) === 'cpu').map((u) => u.profile);
    let pingSamples = 0;
    let labelled = 0;
    for (const profile of cpu) {
      for (const sample of profile.sample) {
        const names = sample.locationId.map((id) => {
          const location = profile.location.find((l) => Number(l.id) === Number(id))!;
          const fn = profile.function.find((f) => Number(f.id) === Number(location.line[0].functionId))!;
          return profile.stringTable.strings[Number(fn.name)];
        });
        if (!names.includes('simulateCPULoad')) continue;
        pingSamples += Number(sample.value[0]);
        const labels = sampleLabels(profile, sample);
        if (labels.route === '/ping' && labels.method === 'GET') labelled += Number(sample.value[0]);
      }
    }
    expect(pingSamples).toBeGreaterThan(20);
    expect(labelled / pingSamples).toBeGreaterThanOrEqual(0.99);
  });

  it('sends a wall profile and a heap profile', () => {
    const wall = ingest.uploads.filter((u) => kindOf(u) === 'wall');
    expect(wall.length).toBeGreaterThanOrEqual(1);
    expect(sampleTypeNames(wall[0].profile)).toEqual(['samples/count', 'wall/nanoseconds']);
    const heap = ingest.uploads.filter((u) => kindOf(u) === 'heap');
    expect(heap.length).toBeGreaterThanOrEqual(1);
    expect(heap[0].profile.sample.length).toBeGreaterThan(0);
  });

  it('merges identical samples and keeps every profile under the ingest limits', () => {
    for (const upload of ingest.uploads) {
      expect(upload.profile.sample.length).toBeLessThan(16_000);
      const keys = upload.profile.sample.map((s) => `${s.locationId.join(',')}|${s.label.map((l) => `${l.key}=${l.str}`).sort().join(',')}`);
      expect(new Set(keys).size).toBe(keys.length);
      expect(Number(upload.profile.timeNanos)).toBeGreaterThan((Date.now() - 3_600_000) * 1e6);
    }
  });

  it('counts what it sent', () => {
    const stats = app.profiler.stats();
    expect(stats.uploadsOk).toBe(ingest.uploads.length);
    expect(stats.uploadsFailed).toBe(0);
    expect(stats.dropped).toBe(0);
    expect(stats.bytesSent).toBe(ingest.uploads.reduce((sum, u) => sum + u.body.length, 0));
    expect(stats.sessions).toBe(1);
  });

  it('never shows credentials in stats or JSON', () => {
    expect(JSON.stringify(app.profiler)).not.toContain('secret-token');
    expect(JSON.stringify(app.profiler.stats())).not.toContain('secret-token');
  });

  it('exports the plugin as default and named', () => {
    expect(profilingPlugin).toBe(fastifyContinuousProfiling);
  });
});
