/**
 * Host safety, bad input over real HTTP: route patterns and `withLabels` values full of what
 * Pyroscope refuses (control characters, `{ } , =`, 10 kB strings, lone surrogates) and thousands
 * of distinct values per second, under concurrent load with continuous profiling. Every upload
 * the ingest stand-in decodes must be one Pyroscope accepts and stores as sent:
 * - label names `[A-Za-z0-9_.]`, values without `{ } , =` or control characters, 1..2048 chars;
 * - fewer than 16,000 samples, sample type names without '-', time_nanos within the last hour;
 * - per window, at most maxLabelValues distinct values per label name plus the `(overflow)`
 *   value they collapse into, and the overflow is counted in stats().
 * Route labels are the patterns (sanitized), never the raw URLs.
 */
import autocannon from 'autocannon';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import type { Profile } from 'pprof-format';
import profilingPlugin from '../src';
import { OVERFLOW_VALUE } from '../src/labels';
import { LABEL_NAME_PATTERN, MAX_LABEL_VALUE_LENGTH, MAX_SAMPLES_PER_PROFILE } from '../src/pyroscope-rules';
import { IngestStandIn, sampleLabels, sampleTypeNames, str, type RecordedRequest } from './helpers/ingest-stand-in';
import { burnCpuForHostSafety, kindOfRequest } from './fixtures/host-safety-helpers';

const LOAD_SECONDS = Number(process.env.FCP_LABELS_LOAD_SECONDS ?? 3);
const MAX_LABEL_VALUES = 50;
const VALUES_PER_REQUEST = 100;
const TEN_KB = 'v'.repeat(10 * 1024);
// eslint-disable-next-line no-control-regex
const FORBIDDEN_IN_VALUE = /[{},=\u0000-\u001f\u007f]/;

/** Route patterns Fastify accepts and Pyroscope would not take as label values as they are. */
const HOSTILE_ROUTES: Array<{ pattern: string; path: string }> = [
  { pattern: '/x{y}', path: '/x%7By%7D' },
  { pattern: '/k=v,w', path: '/k=v,w' },
  { pattern: '/ctl\u0007bell', path: '/ctl%07bell' },
  { pattern: '/nl\nx', path: '/nl%0Ax' },
  { pattern: '/tab\there', path: '/tab%09here' },
  { pattern: `/long/${'a'.repeat(10_000)}`, path: `/long/${'a'.repeat(10_000)}` },
  { pattern: '/f/:n(^\\d{2,3}$)', path: '/f/123' },
  { pattern: '/q/:id', path: '/q/1?raw=url' },
];

/** withLabels values: each request also adds VALUES_PER_REQUEST distinct `tenant` values. */
const HOSTILE_VALUES = ['a{b}=c,d', '\u0000\u001f\u007f', 'line\r\nbreak', TEN_KB, '\ud800 lone surrogate', ' ', '(overflow)', '💥'];

let ingest: IngestStandIn;
let app: FastifyInstance;
let load: autocannon.Result;
let distinctValuesSent = 0;
let loadSeconds = 0;
let uploads: RecordedRequest[];

function buildApp(): FastifyInstance {
  const instance = Fastify({ logger: false });
  for (const { pattern } of HOSTILE_ROUTES) {
    instance.get(pattern, async () => {
      burnCpuForHostSafety(100_000);
      return { ok: true };
    });
  }
  let counter = 0;
  instance.get('/tenant', async () => {
    for (let i = 0; i < VALUES_PER_REQUEST; i++) {
      const note = HOSTILE_VALUES[counter % HOSTILE_VALUES.length];
      const tenant = `tenant-${counter++}`;
      instance.profiler.withLabels({ tenant, note }, () => burnCpuForHostSafety(10_000));
    }
    distinctValuesSent += VALUES_PER_REQUEST;
    return { ok: true };
  });
  return instance;
}

function labelProblems(profile: Profile): string[] {
  const problems: string[] = [];
  for (const sample of profile.sample) {
    for (const label of sample.label) {
      const key = str(profile, label.key);
      if (!LABEL_NAME_PATTERN.test(key)) problems.push(`label name ${JSON.stringify(key.slice(0, 40))}`);
      if (Number(label.str) === 0) continue; // numeric label: Pyroscope drops it, harmless
      const value = str(profile, label.str);
      if (value.length === 0 || value.length > MAX_LABEL_VALUE_LENGTH) problems.push(`${key} value of ${value.length} chars`);
      if (FORBIDDEN_IN_VALUE.test(value)) problems.push(`${key} value ${JSON.stringify(value.slice(0, 40))}`);
    }
  }
  return [...new Set(problems)];
}

/** Distinct values of one label name in one profile. */
function valuesOf(profile: Profile, name: string): Set<string> {
  const values = new Set<string>();
  for (const sample of profile.sample) {
    const value = sampleLabels(profile, sample)[name];
    if (value !== undefined) values.add(value);
  }
  return values;
}

const timeProfiles = (): Profile[] => uploads.filter((u) => ['cpu', 'wall'].includes(kindOfRequest(u))).map((u) => u.profile!);

beforeAll(async () => {
  ingest = await IngestStandIn.start();
  app = buildApp();
  await app.register(profilingPlugin, {
    appName: 'host-safety-labels',
    serverAddress: ingest.url,
    cpuThreshold: 0,
    uploadRate: '1s',
    sampleRate: 1000,
    maxLabelValues: MAX_LABEL_VALUES,
    profileTypes: { cpu: true, wall: true, heap: true },
    flushTimeout: '5s',
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  const requests = [...HOSTILE_ROUTES.map(({ path }) => ({ method: 'GET', path })), { method: 'GET', path: '/tenant' }, { method: 'GET', path: '/tenant' }];
  const options = { url: `http://127.0.0.1:${port}`, connections: 10, duration: LOAD_SECONDS, requests };
  const started = performance.now();
  load = await autocannon(options);
  loadSeconds = (performance.now() - started) / 1000;
  await app.close();
  uploads = ingest.requests;
  console.log(
    `labels fuzz: ${load.requests.total} requests, ${distinctValuesSent} distinct tenant values (${Math.round(distinctValuesSent / loadSeconds)}/s), ` +
      `${uploads.length} uploads, stats ${JSON.stringify(app.profiler.stats())}`,
  );
}, 60_000);

afterAll(async () => {
  await ingest?.close();
});

it('served every request', () => {
  expect(load.errors).toBe(0);
  expect(load.timeouts).toBe(0);
  expect(load.non2xx).toBe(0);
  expect(load.requests.total).toBeGreaterThan(20);
  expect(distinctValuesSent).toBeGreaterThanOrEqual(1_000);
});

it('every upload decodes and was accepted', () => {
  expect(uploads.length).toBeGreaterThanOrEqual(3);
  expect(uploads.filter((u) => u.decodeError !== undefined).map((u) => u.decodeError)).toEqual([]);
  const s = app.profiler.stats();
  expect(s.uploadsOk).toBe(uploads.length);
  expect(s.dropped).toBe(0);
  expect(s.uploadsOk + s.dropped + s.pending).toBe(s.profilesCollected);
});

it('every upload is within what Pyroscope accepts', () => {
  const hourAgoNanos = (Date.now() - 3_600_000) * 1e6;
  for (const upload of uploads) {
    const profile = upload.profile!;
    expect(labelProblems(profile)).toEqual([]);
    expect(profile.sample.length).toBeLessThanOrEqual(MAX_SAMPLES_PER_PROFILE);
    for (const type of sampleTypeNames(profile)) expect(type).not.toContain('-');
    expect(Number(profile.timeNanos)).toBeGreaterThan(hourAgoNanos);
    // the app name, with the instance tag (hostname/pid) that tells processes apart
    expect(upload.name).toMatch(/^host-safety-labels\{instance=[^,}]+\}$/);
  }
});

it('labels routes by their (sanitized) pattern, never by the raw URL', () => {
  const routes = new Set(timeProfiles().flatMap((p) => [...valuesOf(p, 'route')]));
  const long = [...routes].filter((r) => r.startsWith('/long/'));
  expect(long.map((r) => r.length)).toEqual([MAX_LABEL_VALUE_LENGTH]); // cut, not dropped
  const others = [...routes].filter((r) => !r.startsWith('/long/')).sort();
  expect(others).toEqual(['/ctl_bell', '/f/:n(^\\d_2_3_$)', '/k_v_w', '/nl_x', '/q/:id', '/tab_here', '/tenant', '/x_y_']);
});

it('caps the distinct values per label per window, collapses the rest into one value and counts it', () => {
  let overflowSeen = false;
  for (const profile of timeProfiles()) {
    const tenants = valuesOf(profile, 'tenant');
    overflowSeen ||= tenants.has(OVERFLOW_VALUE);
    expect(tenants.size).toBeLessThanOrEqual(MAX_LABEL_VALUES + 1);
  }
  expect(overflowSeen).toBe(true);
  expect(app.profiler.stats().labelValuesOverflowed).toBeGreaterThan(0);
});

it('keeps hostile withLabels values, made safe', () => {
  const notes = new Set(timeProfiles().flatMap((p) => [...valuesOf(p, 'note')]));
  expect(notes).toContain('a_b__c_d');
  expect(notes).toContain('line__break');
  expect([...notes].some((n) => n.length === MAX_LABEL_VALUE_LENGTH && /^v+$/.test(n))).toBe(true);
});
