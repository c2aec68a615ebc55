/**
 * Host safety, security:
 * - credentials (authToken, basicAuthPassword, the Basic header's base64) never appear in the
 *   log output (a real pino logger writing to a captured stream), in errors, in stats() or in
 *   JSON.stringify(app.profiler), even when the server answers 401/500 with a body that echoes
 *   the credential back;
 * - credentials over plain http to a host that is not this machine are refused at registration
 *   with a clear error, unless `allowInsecureAuth: true`; loopback stays easy;
 * - the plugin adds no HTTP route.
 */
import { inspect } from 'node:util';
import Fastify, { type FastifyInstance } from 'fastify';
import profilingPlugin from '../src';
import { ProfilingOptionError } from '../src/errors';
import type { ProfilingOptions } from '../src/options';
import { IngestStandIn } from './helpers/ingest-stand-in';
import { burnCpuFor, LogCapture, waitUntil } from './fixtures/host-safety-helpers';

const TOKEN = 'tok-S3cr3t-9f8e7d6c5b4a3210';
const USER = 'profiler-user';
const PASSWORD = 'pw-S3cr3t-1a2b3c4d5e6f';
const BASIC = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
const SECRETS = [TOKEN, PASSWORD, BASIC];
const WARN = 40;

let ingest: IngestStandIn;

beforeAll(async () => {
  ingest = await IngestStandIn.start();
});

afterAll(async () => {
  await ingest.close();
});

/** Every secret found in `text`, by name. */
function leaks(text: string): string[] {
  return SECRETS.filter((secret) => text.includes(secret)).map((secret) => (secret === TOKEN ? 'authToken' : secret === PASSWORD ? 'basicAuthPassword' : 'Basic base64'));
}

/** The text of an error as a log shipper or a crash report would see it. */
function errorText(error: unknown): string {
  const e = error as { message?: string; stack?: string };
  return `${String(error)}\n${e?.message ?? ''}\n${e?.stack ?? ''}\n${inspect(error, { depth: 5 })}\n${JSON.stringify(error)}`;
}

async function registrationError(options: Record<string, unknown>): Promise<unknown> {
  const app = Fastify({ logger: false });
  app.register(profilingPlugin, options as ProfilingOptions);
  try {
    await app.ready();
  } catch (error) {
    return error;
  } finally {
    await app.close();
  }
  return undefined;
}

describe.each([
  ['a bearer token', { authToken: TOKEN }],
  ['basic auth', { basicAuthUser: USER, basicAuthPassword: PASSWORD }],
])('credentials (%s) never leak', (_name, credentials) => {
  const log = new LogCapture();
  let app: FastifyInstance;
  const seen: string[] = [];

  beforeAll(async () => {
    ingest.clearRecorded();
    app = Fastify({ logger: { level: 'trace', stream: log } });
    await app.register(profilingPlugin, {
      appName: 'host-safety-security',
      serverAddress: ingest.url,
      ...credentials,
      tenantID: 'team-a',
      cpuThreshold: 1000,
      checkInterval: '1h',
      profilingDuration: '1h',
      uploadRate: '5m',
      sampleRate: 1000,
      maxUploadRetries: 1,
      flushTimeout: '3s',
    });
    await app.ready();
    // a server that echoes the credential it refuses: its message goes into logs and lastError
    const echo = 'authToken' in credentials ? `token ${TOKEN} refused` : `Basic ${BASIC} (${USER}:${PASSWORD}) refused`;
    ingest.respondOnce(
      { kind: 'status', status: 401, body: JSON.stringify({ code: 'unauthenticated', message: echo }) },
      { kind: 'status', status: 401, body: JSON.stringify({ code: 'unauthenticated', message: echo }) },
      { kind: 'status', status: 500, body: `internal error: ${echo}` },
      { kind: 'status', status: 500, body: `internal error: ${echo}` },
      { kind: 'status', status: 500, body: `internal error: ${echo}` },
      { kind: 'status', status: 500, body: `internal error: ${echo}` },
    );
    for (let session = 0; session < 2; session++) {
      app.profiler.start();
      burnCpuFor(30);
      await app.profiler.stop();
      seen.push(JSON.stringify(app.profiler.stats()), JSON.stringify(app.profiler), inspect(app.profiler, { depth: 5, getters: true }));
    }
    await waitUntil(() => ingest.requests.length >= 6 && app.profiler.stats().pending === 0, 15_000);
    seen.push(JSON.stringify(app.profiler.stats()), JSON.stringify(app.profiler));
    await app.close();
    seen.push(JSON.stringify(app.profiler.stats()), JSON.stringify(app.profiler), inspect(app.profiler, { depth: 5, getters: true }));
  }, 30_000);

  it('the uploads did carry the credential, and failed with 401 and 500', () => {
    const authorization = ingest.requests[0].headers.authorization;
    expect(authorization).toBe('authToken' in credentials ? `Bearer ${TOKEN}` : `Basic ${BASIC}`);
    expect(ingest.requests.slice(0, 6).map((r) => r.behavior)).toEqual(['status', 'status', 'status', 'status', 'status', 'status']);
    const s = app.profiler.stats();
    expect(s.uploadsFailed).toBeGreaterThan(0);
    expect(s.lastError).toBeDefined();
  });

  it('warnings were logged (with the server message, redacted)', () => {
    const warnings = log.lines.filter((l) => l.level === WARN).map((l) => JSON.stringify(l));
    expect(warnings.some((w) => w.includes('HTTP 401'))).toBe(true);
    expect(warnings.some((w) => w.includes('HTTP 500'))).toBe(true);
    expect(warnings.some((w) => w.includes('***'))).toBe(true);
  });

  it('no credential in the log output', () => {
    expect(log.raw.length).toBeGreaterThan(0);
    expect(leaks(log.text)).toEqual([]);
  });

  it('no credential in stats(), lastError, JSON.stringify(app.profiler) or inspect(app.profiler)', () => {
    for (const text of seen) expect(leaks(text)).toEqual([]);
    expect(leaks(String(app.profiler.stats().lastError))).toEqual([]);
  });
});

describe('credentials in errors', () => {
  it.each([
    ['token and basic auth together', { authToken: TOKEN, basicAuthUser: USER, basicAuthPassword: PASSWORD }],
    ['a password without its user', { basicAuthPassword: PASSWORD }],
    ['credentials in the server URL', { serverAddress: `http://${USER}:${PASSWORD}@127.0.0.1:4040` }],
    ['a token to a remote http server', { authToken: TOKEN, serverAddress: 'http://pyroscope.example.com:4040' }],
    ['a token and a bad option next to it', { authToken: TOKEN, cpuThreshold: 'high' }],
    ['a secret header with a line break', { headers: { 'x-api-key': `${TOKEN}\n` } }],
  ])('%s: refused, and the error does not show the secret', async (_name, options) => {
    const error = await registrationError({ appName: 'sec', serverAddress: 'http://127.0.0.1:4040', cpuThreshold: 1000, ...options });
    expect(error).toBeInstanceOf(ProfilingOptionError);
    expect(leaks(errorText(error))).toEqual([]);
  });
});

describe('credentials over plain http to another host', () => {
  afterEach(() => {
    delete process.env.PYROSCOPE_AUTH_TOKEN;
    delete process.env.PYROSCOPE_SERVER_ADDRESS;
  });

  it.each([
    ['a token, a DNS name', { authToken: TOKEN }, 'http://pyroscope.example.com:4040'],
    ['basic auth, a private IPv4', { basicAuthUser: USER, basicAuthPassword: PASSWORD }, 'http://10.0.0.5:4040'],
    ['a token, an IPv6 address', { authToken: TOKEN }, 'http://[fd00::1]:4040'],
    ['a token, a name that only starts like loopback', { authToken: TOKEN }, 'http://127.0.0.1.nip.io:4040'],
    ['a token, localhost as a subdomain of another host', { authToken: TOKEN }, 'http://localhost.example.com:4040'],
    ['an Authorization header', { headers: { authorization: `Bearer ${TOKEN}` } }, 'http://pyroscope.example.com:4040'],
  ])('%s: refused at registration with a clear error', async (_name, credentials, serverAddress) => {
    const error = await registrationError({ appName: 'sec', serverAddress, cpuThreshold: 1000, ...credentials });
    expect(error).toBeInstanceOf(ProfilingOptionError);
    const e = error as ProfilingOptionError;
    expect(e.code).toBe('FST_CONTINUOUS_PROFILING_INVALID_OPTION');
    expect(e.option).toBe('serverAddress');
    expect(e.message).toMatch(/plain http/);
    expect(e.message).toMatch(/https/);
    expect(e.message).toMatch(/allowInsecureAuth: true/);
    expect(leaks(errorText(error))).toEqual([]);
  });

  it('credentials from the environment count too', async () => {
    process.env.PYROSCOPE_AUTH_TOKEN = TOKEN;
    process.env.PYROSCOPE_SERVER_ADDRESS = 'http://pyroscope.example.com:4040';
    const error = await registrationError({ appName: 'sec', cpuThreshold: 1000 });
    expect((error as ProfilingOptionError).option).toBe('serverAddress');
    expect(leaks(errorText(error))).toEqual([]);
  });

  it.each([
    ['allowInsecureAuth: true', { authToken: TOKEN, allowInsecureAuth: true }, 'http://pyroscope.example.com:4040'],
    ['https', { authToken: TOKEN }, 'https://pyroscope.example.com'],
    ['localhost', { authToken: TOKEN }, 'http://localhost:4040'],
    ['127.0.0.2', { basicAuthUser: USER, basicAuthPassword: PASSWORD }, 'http://127.0.0.2:4040'],
    ['[::1]', { authToken: TOKEN }, 'http://[::1]:4040'],
    ['no credentials', {}, 'http://pyroscope.example.com:4040'],
  ])('accepted with %s', async (_name, credentials, serverAddress) => {
    expect(await registrationError({ appName: 'sec', serverAddress, cpuThreshold: 1000, ...credentials })).toBeUndefined();
  });
});

describe('routes', () => {
  function appWithPing(): FastifyInstance {
    const app = Fastify({ logger: false });
    app.get('/ping', async () => ({ msg: 'pong' }));
    return app;
  }

  it('the plugin adds no HTTP route, with every feature on', async () => {
    const without = appWithPing();
    await without.ready();
    const expected = without.printRoutes();
    await without.close();

    const app = appWithPing();
    await app.register(profilingPlugin, {
      appName: 'sec',
      serverAddress: ingest.url,
      outputDir: '/tmp/fcp-host-safety-never-written',
      cpuThreshold: 1000,
      profileTypes: { cpu: true, wall: true, heap: true },
    });
    await app.ready();
    expect(app.printRoutes()).toBe(expected);
    for (const url of ['/debug/pprof/profile', '/debug/pprof/heap', '/debug/pprof', '/profiler', '/metrics']) {
      expect(app.hasRoute({ method: 'GET', url })).toBe(false);
    }
    await app.close();
  });
});
