/**
 * The Pyroscope exporter against a local ingest stand-in: the request format, and every way the
 * server can misbehave (refuse, hang, slow, 5xx, 4xx with a body, reset), the pending bound,
 * close() under a hung server, and that no credential ever leaks.
 */
import { inspect } from 'node:util';
import { gzipSync } from 'node:zlib';
import { setTimeout as realSetTimeout } from 'node:timers';
import { Function as PprofFunction, Line, Location, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import { ProfilerAlreadyActiveError, ProfilingOptionError } from '../src/errors';
import { insecureAuthProblem, PyroscopeExporter, type PyroscopeExporterOptions } from '../src/exporters/pyroscope';
import type { EncodedProfile, MinimalLogger, ProfileKind } from '../src/types';
import { IngestStandIn, refusedUrl, sampleTypeNames, totalValueByFunction } from './helpers/ingest-stand-in';

// --- fixtures ------------------------------------------------------------------------------------

const WINDOW_START_MS = 1_700_000_000_500;

/** A real gzipped pprof profile: one stack main -> simulateCPULoad, sample types per kind. */
function encodedProfile(kind: ProfileKind, windowIndex = 0): EncodedProfile {
  const strings = new StringTable();
  const types: Record<ProfileKind, Array<[string, string]>> = {
    cpu: [['samples', 'count'], ['cpu', 'nanoseconds']],
    wall: [['samples', 'count'], ['wall', 'nanoseconds']],
    heap: [['inuse_objects', 'count'], ['inuse_space', 'bytes']],
  };
  const fn = (id: number, name: string) => new PprofFunction({ id, name: strings.dedup(name) });
  const loc = (id: number) => new Location({ id, line: [new Line({ functionId: id })] });
  const startMs = WINDOW_START_MS + windowIndex * 15_000;
  const profile = new Profile({
    sampleType: types[kind].map(([type, unit]) => new ValueType({ type: strings.dedup(type), unit: strings.dedup(unit) })),
    function: [fn(1, 'main'), fn(2, 'simulateCPULoad')],
    location: [loc(1), loc(2)],
    sample: [new Sample({ locationId: [2, 1], value: [7, 70_000_000] }), new Sample({ locationId: [1], value: [1, 10_000_000] })],
    stringTable: strings,
    timeNanos: BigInt(startMs) * 1_000_000n,
  });
  return { kind, body: gzipSync(profile.encode()), startMs, endMs: startMs + 15_000, sampleCount: 2 };
}

/** An opaque body of `bytes` bytes (for queue-bound tests, where nothing decodes it). */
function blob(bytes: number, windowIndex: number): EncodedProfile {
  const startMs = WINDOW_START_MS + windowIndex * 15_000;
  return { kind: 'cpu', body: Buffer.alloc(bytes, windowIndex % 256), startMs, endMs: startMs + 15_000, sampleCount: 1 };
}

interface LogEntry {
  level: string;
  obj: unknown;
  msg?: string;
}

function captureLogger(): MinimalLogger & { entries: LogEntry[]; warns: () => LogEntry[]; text: () => string } {
  const entries: LogEntry[] = [];
  const at = (level: string) => (obj: unknown, msg?: string) => void entries.push({ level, obj, msg });
  return {
    entries,
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    debug: at('debug'),
    warns: () => entries.filter((e) => e.level === 'warn'),
    text: () => JSON.stringify(entries),
  };
}

/** A clock the test moves by hand (for the once-a-minute log limit). */
function manualClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return { now: () => time, advance: (ms) => (time += ms) };
}

let standIns: IngestStandIn[] = [];
let exporters: PyroscopeExporter[] = [];

async function startIngest(): Promise<IngestStandIn> {
  const ingest = await IngestStandIn.start();
  standIns.push(ingest);
  return ingest;
}

function newExporter(
  serverAddress: string,
  overrides: Partial<PyroscopeExporterOptions> = {},
): { exporter: PyroscopeExporter; logger: ReturnType<typeof captureLogger> } {
  const logger = captureLogger();
  const exporter = new PyroscopeExporter({
    serverAddress,
    appName: 'greet',
    tags: {},
    headers: {},
    uploadTimeoutMs: 5_000,
    maxUploadRetries: 2,
    maxPendingUploads: 50,
    maxPendingBytes: 20 * 1024 * 1024,
    retryBaseDelayMs: 10,
    retryMaxDelayMs: 100,
    logger,
    ...overrides,
  });
  exporters.push(exporter);
  return { exporter, logger };
}

afterEach(async () => {
  await Promise.all(exporters.map((e) => e.close(0)));
  await Promise.all(standIns.map((s) => s.close()));
  exporters = [];
  standIns = [];
});

async function elapsedMs(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await work();
  return performance.now() - start;
}

// --- the request -----------------------------------------------------------------------------------

describe('request format', () => {
  test('POSTs {serverAddress}/ingest with the exact query, headers and the profile as body', async () => {
    const ingest = await startIngest();
    const { exporter } = newExporter(`${ingest.url}/prefix/`, {
      tags: { env: 'prod', region: 'eu-1' },
      authToken: 'tok-123',
      tenantID: 'team-a',
      headers: { 'x-custom': 'yes', 'Content-Type': 'text/plain' },
    });
    const cpu = encodedProfile('cpu');

    await exporter.export([cpu]);

    const [upload] = await ingest.waitForUploads(1, 5_000);
    expect(upload.method).toBe('POST');
    expect(upload.path).toBe('/prefix/ingest');
    expect(upload.query).toEqual({
      name: 'greet{env=prod,region=eu-1}',
      from: '1700000000',
      until: '1700000016',
      format: 'pprof',
      spyName: 'nodespy',
    });
    expect(upload.headers['content-type']).toBe('application/octet-stream'); // the protocol's wins
    expect(upload.headers['authorization']).toBe('Bearer tok-123');
    expect(upload.headers['x-scope-orgid']).toBe('team-a');
    expect(upload.headers['x-custom']).toBe('yes');
    expect(upload.body.equals(cpu.body)).toBe(true);
    expect(sampleTypeNames(upload.profile)).toEqual(['samples/count', 'cpu/nanoseconds']);
    expect(totalValueByFunction(upload.profile, 'cpu')[0]).toEqual(['main', 80_000_000]);
    expect(totalValueByFunction(upload.profile, 'cpu')[1]).toEqual(['simulateCPULoad', 70_000_000]);
    expect(exporter.stats()).toEqual({ uploadsOk: 1, uploadsFailed: 0, bytesSent: cpu.body.length, dropped: 0, pending: 0 });
  });

  test('without tags the name is the app name alone; no auth or tenant header unless configured', async () => {
    const ingest = await startIngest();
    const { exporter } = newExporter(ingest.url);
    await exporter.export([encodedProfile('heap'), encodedProfile('wall')]);
    const uploads = await ingest.waitForUploads(2, 5_000);
    expect(uploads.map((u) => u.name)).toEqual(['greet', 'greet']);
    expect(uploads[0].path).toBe('/ingest');
    expect(uploads[0].headers['authorization']).toBeUndefined();
    expect(uploads[0].headers['x-scope-orgid']).toBeUndefined();
    expect(sampleTypeNames(uploads[0].profile)).toEqual(['inuse_objects/count', 'inuse_space/bytes']);
    expect(sampleTypeNames(uploads[1].profile)).toEqual(['samples/count', 'wall/nanoseconds']);
  });

  test('basic auth: Authorization is Basic base64(user:password)', async () => {
    const ingest = await startIngest();
    const { exporter } = newExporter(ingest.url, { basicAuthUser: 'alice', basicAuthPassword: 'p@ss:word' });
    await exporter.export([encodedProfile('cpu')]);
    const [upload] = await ingest.waitForUploads(1, 5_000);
    expect(upload.headers['authorization']).toBe(`Basic ${Buffer.from('alice:p@ss:word').toString('base64')}`);
  });

  test('credentials written in the address become basic auth and leave the URL', async () => {
    const ingest = await startIngest();
    const withUserinfo = ingest.url.replace('http://', 'http://bob:s%3Acret@');
    const { exporter } = newExporter(withUserinfo);
    await exporter.export([encodedProfile('cpu')]);
    const [upload] = await ingest.waitForUploads(1, 5_000);
    expect(upload.headers['authorization']).toBe(`Basic ${Buffer.from('bob:s:cret').toString('base64')}`);
  });

  test('limits that would drop everything are refused at construction, naming the option', () => {
    expect(() => newExporter('http://127.0.0.1:1', { uploadTimeoutMs: 0 })).toThrow(
      'Invalid option "uploadTimeout": got 0; expected a positive number',
    );
    expect(() => newExporter('http://127.0.0.1:1', { maxUploadRetries: NaN })).toThrow(/"maxUploadRetries": got NaN/);
  });

  test('a server address that is not an http(s) URL is refused at construction, naming the option', () => {
    expect(() => newExporter('ftp://example.com')).toThrow(ProfilingOptionError);
    expect(() => newExporter('not a url')).toThrow(/Invalid option "serverAddress": got "not a url"; expected an http/);
  });
});

// --- the server misbehaving ----------------------------------------------------------------------

describe('when Pyroscope misbehaves', () => {
  test('refused connections: retried maxUploadRetries times, then dropped and counted; export() resolves', async () => {
    const { exporter, logger } = newExporter(await refusedUrl(), { maxUploadRetries: 2 });

    await expect(exporter.export([encodedProfile('cpu')])).resolves.toBeUndefined();

    const stats = exporter.stats();
    expect(stats).toMatchObject({ uploadsOk: 0, uploadsFailed: 1, dropped: 1, pending: 0, bytesSent: 0 });
    expect(stats.lastError).toMatch(/^ECONNREFUSED: connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
    // three attempts, one warning: the other two are held back by the once-a-minute limit
    expect(logger.warns()).toHaveLength(1);
    expect(logger.warns()[0].msg).toMatch(/Pyroscope upload failed \(ECONNREFUSED\).*retrying in \d+ ms/);
  });

  test('a hung server: each attempt ends at uploadTimeout, then the profile is dropped', async () => {
    const ingest = await startIngest();
    ingest.respond({ kind: 'hang' });
    const { exporter } = newExporter(ingest.url, { uploadTimeoutMs: 300, maxUploadRetries: 1 });

    const took = await elapsedMs(() => exporter.export([encodedProfile('cpu')]));

    expect(took).toBeLessThan(5_000); // two attempts of 300 ms + backoff; without the timeout it never ends
    expect(ingest.requests).toHaveLength(2);
    expect(exporter.stats()).toMatchObject({ uploadsOk: 0, uploadsFailed: 1, dropped: 1, pending: 0 });
    expect(exporter.stats().lastError).toBe('UPLOAD_TIMEOUT: no complete answer within 300 ms');
  });

  test('a slow server (seconds) within uploadTimeout: delivered', async () => {
    const ingest = await startIngest();
    ingest.respond({ kind: 'slow', ms: 1_500 });
    const { exporter } = newExporter(ingest.url, { uploadTimeoutMs: 5_000 });
    await exporter.export([encodedProfile('cpu')]);
    expect(exporter.stats()).toMatchObject({ uploadsOk: 1, uploadsFailed: 0, dropped: 0 });
    expect(ingest.uploads).toHaveLength(1);
  });

  test('a slow server beyond uploadTimeout: the attempt is cut at the timeout and retried', async () => {
    const ingest = await startIngest();
    ingest.respondOnce({ kind: 'slow', ms: 10_000 }).respond({ kind: 'ok' });
    const { exporter } = newExporter(ingest.url, { uploadTimeoutMs: 500, maxUploadRetries: 1 });
    const took = await elapsedMs(() => exporter.export([encodedProfile('cpu')]));
    expect(took).toBeLessThan(6_000); // far below the 10 s answer: the attempt was cut
    expect(exporter.stats()).toMatchObject({ uploadsOk: 1, uploadsFailed: 0, dropped: 0 });
    expect(ingest.requests.map((r) => r.behavior)).toEqual(['slow', 'ok']);
  });

  test('503 twice then 200: retried with exponential backoff and jitter, then delivered', async () => {
    const ingest = await startIngest();
    ingest.respondOnce({ kind: 'status', status: 503 }, { kind: 'status', status: 503 });
    const delays: number[] = [];
    const { exporter } = newExporter(ingest.url, {
      maxUploadRetries: 3,
      retryBaseDelayMs: 100,
      retryMaxDelayMs: 10_000,
      uploadTimeoutMs: 5_000,
      random: () => 0.5, // jitter factor 0.5 + 0.5 * 0.5 = 0.75
      setTimeout: (fn, ms) => {
        if (ms !== 5_000) delays.push(ms); // the backoff waits, not the per-attempt timeouts
        return realSetTimeout(fn, ms);
      },
    });

    await exporter.export([encodedProfile('cpu')]);

    expect(ingest.requests.map((r) => r.behavior)).toEqual(['status', 'status', 'ok']);
    expectWaits(delays, [75, 150]);
    expect(exporter.stats()).toMatchObject({ uploadsOk: 1, uploadsFailed: 0, dropped: 0, pending: 0 });
  });

  test('Retry-After on 429 lengthens the wait (capped by retryMaxDelayMs)', async () => {
    const ingest = await startIngest();
    ingest.respondOnce({ kind: 'status', status: 429, headers: { 'retry-after': '0.3' } });
    const delays: number[] = [];
    const { exporter } = newExporter(ingest.url, {
      retryBaseDelayMs: 10,
      retryMaxDelayMs: 250,
      random: () => 0,
      setTimeout: (fn, ms) => {
        if (ms !== 5_000) delays.push(ms);
        return realSetTimeout(fn, ms);
      },
    });
    await exporter.export([encodedProfile('cpu')]);
    expectWaits(delays, [250]);
    expect(exporter.stats()).toMatchObject({ uploadsOk: 1, dropped: 0 });
  });

  test('500 on every attempt: 1 + maxUploadRetries requests, then failed and dropped', async () => {
    const ingest = await startIngest();
    ingest.respond({ kind: 'status', status: 500, body: 'internal error' });
    const { exporter, logger } = newExporter(ingest.url, { maxUploadRetries: 2 });

    await exporter.export([encodedProfile('cpu'), encodedProfile('heap')]);

    expect(ingest.requests).toHaveLength(6);
    expect(exporter.stats()).toMatchObject({ uploadsOk: 0, uploadsFailed: 2, dropped: 2, pending: 0 });
    expect(exporter.stats().lastError).toBe('HTTP 500: internal error');
    expect(logger.warns()).toHaveLength(1);
  });

  test('a reset connection is retried', async () => {
    const ingest = await startIngest();
    ingest.respondOnce({ kind: 'reset' });
    const { exporter } = newExporter(ingest.url);
    await exporter.export([encodedProfile('cpu')]);
    expect(ingest.requests.map((r) => r.behavior)).toEqual(['reset', 'ok']);
    expect(exporter.stats()).toMatchObject({ uploadsOk: 1, dropped: 0 });
  });

  test.each([
    [400, '{"code":"invalid_argument","message":"invalid name: greet{"}', 'invalid_argument: invalid name: greet{'],
    [401, 'unauthorized: missing credentials', 'unauthorized: missing credentials'],
    [413, '<html>\n<body>Request Entity Too Large</body>\n</html>', '<html> <body>Request Entity Too Large</body> </html>'],
    [422, '{"code":"invalid_argument","message":"profile too large: 5000000 > 4194304"}', 'invalid_argument: profile too large: 5000000 > 4194304'],
  ])('HTTP %i with a body: not retried; the warning names the status and the server message', async (status, body, message) => {
    const ingest = await startIngest();
    ingest.respond({ kind: 'status', status, body });
    const { exporter, logger } = newExporter(ingest.url, { maxUploadRetries: 3 });

    await exporter.export([encodedProfile('cpu')]);

    expect(ingest.requests).toHaveLength(1);
    expect(exporter.stats()).toMatchObject({ uploadsOk: 0, uploadsFailed: 1, dropped: 1, pending: 0 });
    expect(exporter.stats().lastError).toBe(`HTTP ${status}: ${message}`);
    const [warn] = logger.warns();
    expect(warn.msg).toBe(
      `Pyroscope upload was answered HTTP ${status}: ${message} (profile dropped; 0 similar warnings suppressed)`,
    );
    expect(warn.obj).toMatchObject({ status, reason: message, suppressed: 0, attempt: 1, profileKind: 'cpu' });
  });

  test('a long server message is cut short', async () => {
    const ingest = await startIngest();
    ingest.respond({ kind: 'status', status: 400, body: 'x'.repeat(10_000) });
    const { exporter } = newExporter(ingest.url);
    await exporter.export([encodedProfile('cpu')]);
    expect(exporter.stats().lastError).toBe(`HTTP 400: ${'x'.repeat(200)}...`);
  });

  test('4xx warnings: at most once a minute per status, then with the count of the ones held back', async () => {
    const ingest = await startIngest();
    ingest.respond({ kind: 'status', status: 401, body: 'bad token' });
    const clock = manualClock();
    const { exporter, logger } = newExporter(ingest.url, { now: clock.now });
    const warnsFor = (status: number) => logger.warns().filter((w) => (w.obj as { status?: number }).status === status);

    for (let i = 0; i < 3; i++) {
      await exporter.export([encodedProfile('cpu', i)]);
      clock.advance(15_000);
    }
    expect(warnsFor(401)).toHaveLength(1); // at 0 s; 15 s and 30 s held back

    ingest.respondOnce({ kind: 'status', status: 422, body: '{"code":"invalid_argument","message":"bad"}' });
    await exporter.export([encodedProfile('cpu', 3)]); // at 45 s: another kind, logged at once
    expect(warnsFor(422)).toHaveLength(1);

    clock.advance(15_000); // 60 s after the first 401 warning
    await exporter.export([encodedProfile('cpu', 4)]);
    const warns401 = warnsFor(401);
    expect(warns401).toHaveLength(2);
    expect(warns401[1].obj).toMatchObject({ status: 401, suppressed: 2 });
    expect(warns401[1].msg).toContain('2 similar warnings suppressed');
    expect(exporter.stats()).toMatchObject({ uploadsFailed: 5, dropped: 5 });
  });

  test('a header the HTTP layer refuses does not throw: counted as failed, not retried', async () => {
    const ingest = await startIngest();
    const { exporter } = newExporter(ingest.url, { headers: { 'x-bad': 'line\nbreak' } });
    await expect(exporter.export([encodedProfile('cpu')])).resolves.toBeUndefined();
    expect(ingest.requests).toHaveLength(0);
    expect(exporter.stats()).toMatchObject({ uploadsFailed: 1, dropped: 1 });
    expect(exporter.stats().lastError).toMatch(/^INVALID_REQUEST: /);
  });

  test('a logger that throws does not break uploads', async () => {
    const ingest = await startIngest();
    ingest.respondOnce({ kind: 'status', status: 503 });
    const throwing = () => {
      throw new Error('logger down');
    };
    const { exporter } = newExporter(ingest.url, {
      logger: { info: throwing, warn: throwing, error: throwing, debug: throwing },
    });
    await expect(exporter.export([encodedProfile('cpu')])).resolves.toBeUndefined();
    expect(exporter.stats()).toMatchObject({ uploadsOk: 1, dropped: 0 });
  });

  test('hostile input to export() resolves and is counted, never thrown', async () => {
    const ingest = await startIngest();
    const { exporter } = newExporter(ingest.url);
    await expect(exporter.export(undefined as unknown as EncodedProfile[])).resolves.toBeUndefined();
    await expect(exporter.export([])).resolves.toBeUndefined();
    await expect(exporter.export([{ kind: 'cpu', body: 'nope' } as unknown as EncodedProfile])).resolves.toBeUndefined();
    await expect(exporter.export([null as unknown as EncodedProfile])).resolves.toBeUndefined();
    expect(exporter.stats()).toMatchObject({ uploadsOk: 0, dropped: 2, pending: 0 });
  });
});

// --- the pending bound -------------------------------------------------------------------------

describe('pending profiles are bounded', () => {
  test('beyond maxPendingUploads the oldest are dropped and counted', async () => {
    const ingest = await startIngest();
    ingest.respond({ kind: 'hang' });
    const { exporter, logger } = newExporter(ingest.url, { maxPendingUploads: 3, uploadTimeoutMs: 30_000 });

    const first = exporter.export(Array.from({ length: 10 }, (_, i) => blob(1_000, i)));

    // 7 oldest dropped at once; the newest 3 wait, the oldest of them goes out first
    expect(exporter.stats()).toMatchObject({ pending: 3, dropped: 7, uploadsFailed: 0 });
    const [inFlight] = await ingest.waitForRequests(1, 5_000);
    expect(inFlight.body[0]).toBe(7);

    const second = exporter.export([blob(1_000, 10), blob(1_000, 11)]);
    expect(exporter.stats()).toMatchObject({ pending: 3, dropped: 9 }); // 8 and 9 gone, 7 still in flight
    expect(logger.warns().filter((w) => w.msg?.includes('queue full'))).toHaveLength(1); // rate-limited

    await exporter.close(100);
    await Promise.all([first, second]);
    expect(exporter.stats()).toMatchObject({ pending: 0, dropped: 12, uploadsOk: 0, uploadsFailed: 1 });
  });

  test('beyond maxPendingBytes the oldest are dropped; a profile larger than the bound alone is dropped itself', async () => {
    const ingest = await startIngest();
    ingest.respond({ kind: 'hang' });
    const { exporter } = newExporter(ingest.url, { maxPendingBytes: 2_500, uploadTimeoutMs: 30_000 });

    void exporter.export([blob(1_000, 0), blob(1_000, 1)]);
    expect(exporter.stats()).toMatchObject({ pending: 2, dropped: 0 });
    void exporter.export([blob(1_000, 2)]); // 3,000 bytes > 2,500: window 1 (oldest waiting) goes
    expect(exporter.stats()).toMatchObject({ pending: 2, dropped: 1 });
    void exporter.export([blob(3_000, 3)]); // alone over the bound: dropped, the others stay
    expect(exporter.stats()).toMatchObject({ pending: 2, dropped: 2 });
  });
});

// --- close ---------------------------------------------------------------------------------------

describe('close()', () => {
  test('returns within its timeout (plus margin) while the server hangs, dropping and counting what is left', async () => {
    const ingest = await startIngest();
    ingest.respond({ kind: 'hang' });
    const { exporter } = newExporter(ingest.url, { uploadTimeoutMs: 30_000 });
    const exported = exporter.export([encodedProfile('cpu', 0), encodedProfile('heap', 0), encodedProfile('cpu', 1)]);
    await ingest.waitForRequests(1, 5_000);

    const took = await elapsedMs(() => exporter.close(500));

    expect(took).toBeLessThan(500 + 3_000); // generous margin; the upload timeout is 30 s
    await expect(exported).resolves.toBeUndefined();
    expect(exporter.stats()).toMatchObject({ pending: 0, dropped: 3, uploadsOk: 0, uploadsFailed: 1 });
    expect(ingest.requests).toHaveLength(1);

    // after close: accepted, dropped at once, counted
    await exporter.export([encodedProfile('cpu', 2)]);
    expect(exporter.stats()).toMatchObject({ pending: 0, dropped: 4 });
  });

  test('does not wait for a retry whose backoff ends after the deadline', async () => {
    const ingest = await startIngest();
    ingest.respond({ kind: 'status', status: 503 });
    const { exporter, logger } = newExporter(ingest.url, { retryBaseDelayMs: 10_000, retryMaxDelayMs: 10_000 });
    void exporter.export([encodedProfile('cpu')]);
    await ingest.waitForRequests(1, 5_000);

    const took = await elapsedMs(() => exporter.close(300));

    expect(took).toBeLessThan(300 + 4_000); // the backoff alone is 10 s
    expect(ingest.requests).toHaveLength(1);
    expect(exporter.stats()).toMatchObject({ pending: 0, dropped: 1, uploadsFailed: 1 });
    expect(logger.warns().at(-1)?.msg).toBe('Pyroscope exporter closed with 1 of 1 pending profiles not delivered');
  });

  test('retries within the deadline still happen during close', async () => {
    const ingest = await startIngest();
    ingest.respondOnce({ kind: 'status', status: 503 }, { kind: 'status', status: 503 });
    const { exporter } = newExporter(ingest.url, { retryBaseDelayMs: 50, retryMaxDelayMs: 200 });
    void exporter.export([encodedProfile('cpu')]);
    await exporter.close(5_000);
    expect(ingest.requests.map((r) => r.behavior)).toEqual(['status', 'status', 'ok']);
    expect(exporter.stats()).toMatchObject({ uploadsOk: 1, dropped: 0, pending: 0 });
  });

  test('delivers what is pending when the server answers in time', async () => {
    const ingest = await startIngest();
    ingest.respond({ kind: 'slow', ms: 100 });
    const { exporter } = newExporter(ingest.url);
    const exported = exporter.export([encodedProfile('cpu', 0), encodedProfile('heap', 0), encodedProfile('cpu', 1)]);

    await exporter.close(5_000);

    await exported;
    expect(exporter.stats()).toMatchObject({ uploadsOk: 3, dropped: 0, pending: 0 });
    expect(ingest.uploads).toHaveLength(3);
  });

  test('is idempotent and closes the connections it opened', async () => {
    const ingest = await startIngest();
    const { exporter } = newExporter(ingest.url);
    await exporter.export([encodedProfile('cpu')]);
    expect(ingest.openConnections).toBe(1); // kept alive for the next upload
    await Promise.all([exporter.close(1_000), exporter.close(1_000)]);
    await exporter.close(1_000);
    await waitUntil(() => ingest.openConnections === 0, 2_000);
  });
});

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => realSetTimeout(resolve, 10));
  }
}

// --- security ------------------------------------------------------------------------------------

describe('credentials never leak', () => {
  const TOKEN = 'tok-SECRET-1234567';
  const PASSWORD = 'pw-SECRET-7654321';
  const API_KEY = 'key-SECRET-abcdefg';
  const secretsIn = (text: string): string[] =>
    [TOKEN, PASSWORD, API_KEY, Buffer.from(`alice:${PASSWORD}`).toString('base64')].filter((s) => text.includes(s));

  test('not in logs, lastError, stats(), JSON.stringify or inspect, even when the server echoes them', async () => {
    const ingest = await startIngest();
    // a misbehaving gateway that echoes the request's credentials in its error body
    ingest.respond({
      kind: 'status',
      status: 401,
      body: JSON.stringify({ code: 'unauthenticated', message: `bad token Bearer ${TOKEN}, key ${API_KEY}` }),
    });
    const bearer = newExporter(ingest.url, { authToken: TOKEN, headers: { 'x-api-key': API_KEY } });
    const basic = newExporter(ingest.url.replace('http://', `http://alice:${PASSWORD}@`));

    await bearer.exporter.export([encodedProfile('cpu')]);
    ingest.respond({ kind: 'status', status: 403, body: `Basic ${Buffer.from(`alice:${PASSWORD}`).toString('base64')} is not allowed` });
    await basic.exporter.export([encodedProfile('cpu')]);

    // the secrets did go out, on the wire, where they belong
    expect(ingest.requests[0].headers['authorization']).toBe(`Bearer ${TOKEN}`);
    expect(ingest.requests[1].headers['authorization']).toBe(`Basic ${Buffer.from(`alice:${PASSWORD}`).toString('base64')}`);

    const everywhere = [
      bearer.logger.text(),
      basic.logger.text(),
      JSON.stringify(bearer.exporter.stats()),
      JSON.stringify(basic.exporter.stats()),
      JSON.stringify(bearer.exporter),
      JSON.stringify(basic.exporter),
      inspect(bearer.exporter, { depth: 10, showHidden: true }),
      inspect(basic.exporter, { depth: 10, showHidden: true }),
    ].join('\n');
    expect(secretsIn(everywhere)).toEqual([]);
    expect(bearer.exporter.stats().lastError).toBe('HTTP 401: unauthenticated: bad token ***, key ***');
    expect(basic.exporter.stats().lastError).toBe('HTTP 403: *** is not allowed');
    expect(JSON.stringify(bearer.exporter)).toBe('{"name":"pyroscope"}');
  });

  test('not in the error for a bad server address carrying userinfo', () => {
    let error: unknown;
    try {
      newExporter(`ftp://alice:${PASSWORD}@example.com`);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ProfilingOptionError);
    expect(String((error as Error).message)).toBe(
      'Invalid option "serverAddress": got "ftp://***@example.com"; expected an http:// or https:// URL such as "http://localhost:4040"',
    );
  });
});

describe('insecureAuthProblem', () => {
  test.each([
    ['http://pyroscope.internal:4040', true],
    ['http://10.0.0.5:4040', true],
    ['http://user:pass@pyroscope.internal', false], // userinfo in the URL counts as credentials
    ['http://127.0.0.2.example.com', true],
    ['http://[::ffff:10.0.0.1]:4040', true],
    ['http://0.0.0.0:4040', true],
  ])('%s with credentials=%s: refused', (address, hasCredentials) => {
    const problem = insecureAuthProblem(address, hasCredentials);
    expect(problem).toMatch(/^credentials would be sent unencrypted over plain http to "[^"]+"$/);
    expect(problem).not.toContain('pass');
  });

  test.each([
    ['http://127.0.0.1:4040', true],
    ['http://127.8.9.10:4040', true],
    ['http://localhost:4040', true],
    ['http://LOCALHOST:4040/pyroscope', true],
    ['http://[::1]:4040', true],
    ['http://[::ffff:127.0.0.1]:4040', true],
    ['https://pyroscope.example.com', true],
    ['http://pyroscope.internal:4040', false],
    ['not a url', true],
  ])('%s with credentials=%s: fine', (address, hasCredentials) => {
    expect(insecureAuthProblem(address, hasCredentials)).toBeUndefined();
  });
});

// --- errors ----------------------------------------------------------------------------------------

describe('error classes', () => {
  test('ProfilingOptionError names the option, the value and what is expected, with a stable code', () => {
    const error = new ProfilingOptionError('cpuThreshold', 1001, 'an integer from 0 to 1000');
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('FST_CONTINUOUS_PROFILING_INVALID_OPTION');
    expect(error.option).toBe('cpuThreshold');
    expect(error.message).toBe('Invalid option "cpuThreshold": got 1001; expected an integer from 0 to 1000');
    expect(new ProfilingOptionError('uploadRate', '15 sec', 'a duration').message).toBe(
      'Invalid option "uploadRate": got "15 sec"; expected a duration',
    );
    expect(new ProfilingOptionError('sampleRate', NaN, 'a number').message).toContain('got NaN;');
    expect(new ProfilingOptionError('tags', { a: { b: 1 } }, 'strings').message).toContain('got {"a":{"b":1}};');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(new ProfilingOptionError('tags', cyclic, 'strings').message).toContain('got [object Object];');
  });

  test('ProfilingOptionError cuts long values and never prints secret options', () => {
    const long = new ProfilingOptionError('appName', 'a'.repeat(10_000), 'a short name').message;
    expect(long.length).toBeLessThan(250);
    expect(long).toContain('...(10002 chars)');
    for (const option of ['authToken', 'basicAuthPassword', 'headers', 'headers.authorization']) {
      expect(new ProfilingOptionError(option, 'hunter2-secret', 'a string').message).toBe(
        `Invalid option "${option}": got '***'; expected a string`,
      );
    }
  });

  test('ProfilerAlreadyActiveError carries a stable code', () => {
    const active = new ProfilerAlreadyActiveError();
    expect(active.code).toBe('FST_CONTINUOUS_PROFILING_ALREADY_ACTIVE');
    expect(active.message).toMatch(/already active/);
  });
});

/**
 * The exporter sleeps until the retry time it computed, so a wait is the computed delay less the
 * few ms that passed before the sleep began (more on a loaded machine): never more, not much less.
 */
function expectWaits(actual: number[], computed: number[]): void {
  expect(actual).toHaveLength(computed.length);
  actual.forEach((ms, i) => {
    expect(ms).toBeLessThanOrEqual(computed[i]);
    expect(ms).toBeGreaterThan(computed[i] * 0.6);
  });
}
