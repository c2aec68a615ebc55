/**
 * Issue 22: registration at any level labels every route or fails loudly (src/registration.ts).
 *
 * A fastify-cli app laid out as `fastify generate` makes it (test/fixtures/cli-app: @fastify/autoload
 * for plugins/ and routes/ with routes two folders deep), built with fastify-cli's own
 * `helper.build`, both as its test helper does (skipOverride: the app is the root) and as
 * `fastify start app.js` does (the app is a child of an empty root). A plugins/ file wrapped in
 * fastify-plugin works and labels the routes of every level (decoded profile, >= 99 % of each
 * route's burn samples); one without it fails with ProfilerRegistrationError. Plain Fastify apps
 * with the profiler inside an encapsulated plugin fail the same way, whichever comes first.
 */
import os from 'node:os';
import path from 'node:path';
import { time } from '@datadog/pprof';
import Fastify, { type FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Profile } from 'pprof-format';
import profilingPlugin, { ProfilerRegistrationError } from '../src';
import { runChild } from './helpers/child-report';

interface Accuracy {
  routes: Record<string, { samples: number; correct: number; otherRoute: number; unlabelled: number; share: number }>;
}
interface Workload {
  decodeProfile(gzipped: Buffer): Profile;
  routeAccuracy(profile: Profile, routes: { pattern: string; burn: string }[]): Accuracy;
  mergeAccuracy(parts: Accuracy[], routes: { pattern: string; burn: string }[]): Accuracy;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const workload = require('./fixtures/accuracy-workload.js') as Workload;

const CLI_APP_RUNNER = path.join(__dirname, 'fixtures', 'cli-app', 'run.js');
const ROUTES = [
  { pattern: '/', burn: 'burnCliRoot' },
  { pattern: '/users/:id', burn: 'burnCliUsers' },
  { pattern: '/shop/orders/list', burn: 'burnCliOrders' },
];
const OPTIONS = { appName: 'registration', outputDir: path.join(os.tmpdir(), 'fcp-registration-unused'), cpuThreshold: false as const };

afterEach(() => {
  expect(time.isStarted()).toBe(false);
});

interface CliAppResult {
  buildError?: { name: string; code?: string; message: string };
  statuses?: Record<string, number>;
  profiles?: string[];
}

function runCliApp(skipOverride: boolean, pluginsDir: string): Promise<CliAppResult> {
  return runChild<CliAppResult>(CLI_APP_RUNNER, [JSON.stringify({ skipOverride, pluginsDir, loadMs: 2500 })]);
}

describe('fastify-cli app (helper.build, @fastify/autoload)', () => {
  test.each([
    ['as its test helper builds it (skipOverride: the app is the root)', true],
    ['as `fastify start app.js` runs it (the app is a child of the root)', false],
  ])('a plugins/ file wrapped in fastify-plugin: routes of every level labelled, %s', async (_name, skipOverride) => {
    const result = await runCliApp(skipOverride, 'plugins-fp');
    expect(result.buildError).toBeUndefined();
    expect(Object.keys(result.statuses!)).toEqual(['200']);
    expect(result.profiles!.length).toBeGreaterThan(0);
    const accuracy = workload.mergeAccuracy(
      result.profiles!.map((b64) => workload.routeAccuracy(workload.decodeProfile(Buffer.from(b64, 'base64')), ROUTES)),
      ROUTES,
    );
    // eslint-disable-next-line no-console
    console.log(
      `fastify-cli app (skipOverride ${skipOverride}), Node ${process.version}: ` +
        Object.entries(accuracy.routes)
          .map(([route, r]) => `${route} ${(r.share * 100).toFixed(1)} % of ${r.samples}`)
          .join(' | '),
    );
    const shortfalls = Object.entries(accuracy.routes)
      .map(([route, r]) => ({ route, ...r }))
      .filter((r) => r.samples < 30 || r.share < 0.99);
    expect(shortfalls).toEqual([]);
  }, 60_000);

  test.each([true, false])('a plugins/ file without fastify-plugin: build fails with ProfilerRegistrationError (skipOverride %s)', async (skipOverride) => {
    const { buildError } = await runCliApp(skipOverride, 'plugins-plain');
    expect(buildError).toMatchObject({ name: 'ProfilerRegistrationError', code: 'FST_CONTINUOUS_PROFILING_NOT_ROOT' });
    expect(buildError!.message).toMatch(
      /^fastify-continuous-profiling was registered inside the encapsulated plugin "[^"]*\/plugins-plain\/profiling\.js", and route GET \/ is declared outside it: its samples would carry no route; register it on the root instance, or wrap the plugin that registers it in fastify-plugin/,
    );
  }, 60_000);
});

describe('plain Fastify apps', () => {
  test('inside an encapsulated plugin, after a root route was declared: refused at registration, code and fix named', async () => {
    const app = Fastify();
    app.register(async function child(instance) {
      await instance.register(profilingPlugin, OPTIONS);
    });
    app.get('/a', async () => 'a'); // declared before any plugin function runs
    const error = await app.ready().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ProfilerRegistrationError);
    expect((error as ProfilerRegistrationError).code).toBe('FST_CONTINUOUS_PROFILING_NOT_ROOT');
    expect((error as Error).message).toBe(
      'fastify-continuous-profiling was registered inside the encapsulated plugin "child" after routes were declared: ' +
        "its hooks would label only that plugin's routes while it profiles the whole process; register it on the root instance, " +
        'or wrap the plugin that registers it in fastify-plugin (module.exports = fp(async (app) => { await app.register(profiling, options) })), ' +
        'before any route; see docs/where-it-works.md',
    );
    await app.close();
  });

  test('inside an encapsulated plugin, a sibling plugin declaring a route later: that declaration fails', async () => {
    const app = Fastify();
    app.register(async function child(instance) {
      await instance.register(profilingPlugin, OPTIONS);
      instance.get('/c', async () => 'c'); // its own level: fine
    });
    app.register(async function sibling(instance) {
      instance.get('/s', async () => 's');
    });
    await expect(app.ready()).rejects.toThrow(/and route GET \/s is declared outside it/);
    await app.close();
  });

  // (runs after the refused boots above: they left the process's one profiler slot free)
  test('at the root, or in a plugin wrapped in fastify-plugin: accepted, app.profiler on the root', async () => {
    for (const register of [
      (app: FastifyInstance) => app.register(profilingPlugin, OPTIONS),
      (app: FastifyInstance) => app.register(fp(async (instance) => instance.register(profilingPlugin, OPTIONS))),
    ]) {
      const app = Fastify();
      register(app);
      app.get('/a', async () => 'a');
      app.register(async (child) => child.get('/b', async () => 'b'));
      await app.ready();
      expect(app.profiler.state).toBe('idle');
      await app.close();
    }
  });
});
