/**
 * Issue 22: WebSocket messages carry the route of their upgrade request (src/labels/websocket.ts).
 *
 * The plugin with real @fastify/websocket and real `ws` clients under concurrent load: two
 * websocket routes whose message handlers burn in their own function across an await, an HTTP
 * route beside them, a background timer outside any request. Half the connections open before
 * the session starts (connections outlive sessions), half during it. The profile files are
 * decoded: >= 99 % of each message handler's burn samples must carry its route and method.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { setImmediate as nextImmediate } from 'node:timers/promises';
import { time } from '@datadog/pprof';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Profile } from 'pprof-format';
import WebSocket from 'ws';
import profilingPlugin from '../src';
import { UpgradeSocketBindings, isWebSocketRoute, type LabelRunner } from '../src/labels/websocket';
import type { Labels } from '../src/types';
import { workload, type Accuracy } from './helpers/accuracy-workload';


const ROUTES = [
  { pattern: '/ws/alpha', burn: 'burnWsAlpha' },
  { pattern: '/ws/rooms/:room', burn: 'burnWsRoom' },
  { pattern: '/http', burn: 'burnHttp' },
];
const REQUIRED_SHARE = 0.99;
const MIN_SAMPLES = 30;
const CLIENTS_PER_ROUTE = 10;
const LOAD_MS = 3000;

const BURN_ITERATIONS = 20_000;
function burnWsAlpha(n = BURN_ITERATIONS): number {
  let x = 1;
  for (let i = 0; i < n; i++) x = (Math.imul(x, 1103515245) + 12345) >>> 0;
  return x;
}
function burnWsRoom(n = BURN_ITERATIONS): number {
  let x = 2;
  for (let i = 0; i < n; i++) x = (Math.imul(x, 22695477) + 1) >>> 0;
  return x;
}
function burnHttp(n = BURN_ITERATIONS): number {
  let x = 3;
  for (let i = 0; i < n; i++) x = (Math.imul(x, 134775813) + 1) >>> 0;
  return x;
}

afterEach(() => {
  expect(time.isStarted()).toBe(false);
});

async function buildApp(outputDir: string): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(profilingPlugin, {
    appName: 'websocket-labels',
    outputDir,
    cpuThreshold: false, // started by hand, after the first connections opened
    sampleRate: 1000,
    uploadRate: '60s',
    profilingDuration: '5m',
    profileTypes: { cpu: true, wall: false, heap: false },
  });
  await app.register(websocket);
  app.get('/ws/alpha', { websocket: true }, (socket) => {
    socket.on('message', async () => {
      let acc = burnWsAlpha();
      await nextImmediate();
      acc ^= burnWsAlpha();
      socket.send(String(acc));
    });
  });
  app.get<{ Params: { room: string } }>('/ws/rooms/:room', { websocket: true }, (socket, request) => {
    socket.on('message', async () => {
      await Promise.resolve();
      let acc = burnWsRoom();
      await new Promise((resolve) => setTimeout(resolve, 0));
      acc ^= burnWsRoom();
      socket.send(`${request.params.room}:${acc}`);
    });
  });
  app.get('/http', async () => {
    let acc = burnHttp();
    await nextImmediate();
    acc ^= burnHttp();
    return { acc };
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return app;
}

/** One client: opens, then sends a message and waits for its reply until the deadline. */
class Client {
  readonly socket: WebSocket;
  messages = 0;
  constructor(url: string) {
    this.socket = new WebSocket(url);
  }
  async open(): Promise<void> {
    await once(this.socket, 'open');
  }
  async loop(deadline: number): Promise<void> {
    while (Date.now() < deadline) {
      const reply = once(this.socket, 'message');
      this.socket.send('go');
      await reply;
      this.messages++;
    }
  }
  async close(): Promise<void> {
    const closed = once(this.socket, 'close');
    this.socket.close();
    await closed;
  }
}

async function httpLoop(port: number, deadline: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let ok = 0;
  while (Date.now() < deadline) {
    const status = await new Promise<number>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/http', agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        })
        .on('error', reject);
    });
    if (status === 200) ok++;
  }
  agent.destroy();
  return ok;
}

function readAccuracy(outputDir: string): Accuracy {
  const files = fs.readdirSync(outputDir).filter((f) => f.includes('.cpu.') && f.endsWith('.pb.gz'));
  expect(files.length).toBeGreaterThan(0);
  const parts = files.map((f) => workload.routeAccuracy(workload.decodeProfile(fs.readFileSync(path.join(outputDir, f))), ROUTES));
  return workload.mergeAccuracy(parts, ROUTES);
}

/** The method label of the samples holding `burn` (all of them must say GET: the upgrade's). */
function methodsOf(outputDir: string, burn: string): Set<string> {
  const methods = new Set<string>();
  for (const f of fs.readdirSync(outputDir).filter((name) => name.includes('.cpu.'))) {
    const profile = workload.decodeProfile(fs.readFileSync(path.join(outputDir, f)));
    const strings = profile.stringTable.strings;
    const burnIds = new Set(profile.function.filter((fn) => strings[Number(fn.name)] === burn).map((fn) => String(fn.id)));
    const burnLocations = new Set(
      profile.location.filter((l) => l.line.some((line) => burnIds.has(String(line.functionId)))).map((l) => String(l.id)),
    );
    for (const sample of profile.sample) {
      if (!sample.locationId.some((id) => burnLocations.has(String(id)))) continue;
      const label = sample.label.find((l) => strings[Number(l.key)] === 'method');
      methods.add(label === undefined ? '(none)' : strings[Number(label.str)]);
    }
  }
  return methods;
}

describe(`WebSocket messages carry their upgrade request's route (Node ${process.version})`, () => {
  test('>= 99 % of each message handler\'s burn samples carry its route, connections opened before and during the session', async () => {
    const outputDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcp-websocket-'));
    const app = await buildApp(outputDir);
    const { port } = app.server.address() as net.AddressInfo;
    const urls = [`ws://127.0.0.1:${port}/ws/alpha`, `ws://127.0.0.1:${port}/ws/rooms/`];
    const clientsFor = (round: number): Client[] =>
      Array.from({ length: CLIENTS_PER_ROUTE }, (_, i) => [new Client(urls[0]), new Client(`${urls[1]}${round}-${i}`)]).flat();
    const stopBackground = workload.startBackgroundBurn();
    try {
      const before = clientsFor(0);
      await Promise.all(before.map((c) => c.open()));
      expect(app.profiler.start()).toBe(true);
      const during = clientsFor(1);
      await Promise.all(during.map((c) => c.open()));
      const clients = [...before, ...during];
      const deadline = Date.now() + LOAD_MS;
      const [httpOk] = await Promise.all([
        Promise.all(Array.from({ length: 4 }, () => httpLoop(port, deadline))).then((counts) => counts.reduce((a, b) => a + b, 0)),
        ...clients.map((c) => c.loop(deadline)),
      ]);
      await app.profiler.stop();
      await Promise.all(clients.map((c) => c.close()));
      const labelMode = app.profiler.stats().labelMode;
      await app.close(); // the last window's file is written by now
      const messages = clients.reduce((n, c) => n + c.messages, 0);
      const accuracy = readAccuracy(outputDir);
      // eslint-disable-next-line no-console
      console.log(
        `WebSocket labels, Node ${process.version}, ${labelMode}: ${messages} messages, ${httpOk} HTTP requests; ` +
          Object.entries(accuracy.routes)
            .map(([route, r]) => `${route} ${(r.share * 100).toFixed(1)} % of ${r.samples}`)
            .join(' | ') +
          ` | background with a route: ${accuracy.background.withRoute}/${accuracy.background.samples}`,
      );
      // plain HTTP ran beside the sockets (how much depends on the machine: 4 seen on a busy one)
      expect(httpOk).toBeGreaterThan(0);
      expect(clients.every((c) => c.messages > 0)).toBe(true);
      const shortfalls = Object.entries(accuracy.routes)
        .map(([route, r]) => ({ route, ...r }))
        .filter((r) => r.samples < MIN_SAMPLES || r.share < REQUIRED_SHARE);
      expect(shortfalls).toEqual([]);
      expect(accuracy.background.withRoute).toBe(0);
      expect(methodsOf(outputDir, 'burnWsAlpha')).toEqual(new Set(['GET']));
    } finally {
      stopBackground();
      await app.close();
      fs.rmSync(outputDir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('isWebSocketRoute', () => {
  test('websocket: true or a wsHandler make a websocket route; anything else does not', () => {
    expect(isWebSocketRoute({ websocket: true })).toBe(true);
    expect(isWebSocketRoute({ wsHandler: () => undefined })).toBe(true);
    expect(isWebSocketRoute({ websocket: 'yes' })).toBe(false);
    expect(isWebSocketRoute({ method: 'GET', url: '/' })).toBe(false);
  });
});

describe('UpgradeSocketBindings on real TCP sockets', () => {
  /** A connected pair of sockets on 127.0.0.1: [server side, client side]. */
  async function socketPair(): Promise<{ server: net.Server; accepted: net.Socket; client: net.Socket }> {
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const [accepted] = (await once(server, 'connection')) as [net.Socket];
    return { server, accepted, client };
  }

  const LABELS: Labels = Object.freeze({ route: '/ws', method: 'GET' });

  function recordingRunner(): LabelRunner & { active: boolean; runs: number; inside: Labels | undefined } {
    const runner = {
      active: false,
      runs: 0,
      inside: undefined as Labels | undefined,
      run<T>(labels: Labels, fn: () => T): T {
        runner.runs++;
        runner.inside = labels;
        try {
          return fn();
        } finally {
          runner.inside = undefined;
        }
      },
    };
    return runner;
  }

  test('each event runs under the labels only while a session is active; close puts the socket\'s own emit back', async () => {
    const { server, accepted, client } = await socketPair();
    const runner = recordingRunner();
    const bindings = new UpgradeSocketBindings(runner);
    const seen: (Labels | undefined)[] = [];
    accepted.on('data', () => seen.push(runner.inside));
    bindings.bind(accepted, LABELS);
    bindings.bind(accepted, LABELS); // a second bind of the same socket changes nothing
    expect(bindings.size).toBe(1);
    expect(Object.prototype.hasOwnProperty.call(accepted, 'emit')).toBe(true);

    client.write('a');
    await once(accepted, 'data');
    runner.active = true;
    client.write('b');
    await once(accepted, 'data');
    expect(seen).toEqual([undefined, LABELS]);

    client.end();
    await once(accepted, 'close');
    expect(bindings.size).toBe(0);
    expect(Object.prototype.hasOwnProperty.call(accepted, 'emit')).toBe(false);
    server.close();
  });

  test('unbindAll (the plugin closes) restores every open socket; a wrap added on top of ours stays and passes through', async () => {
    const { server, accepted, client } = await socketPair();
    const runner = recordingRunner();
    runner.active = true;
    const bindings = new UpgradeSocketBindings(runner);
    bindings.bind(accepted, LABELS);
    const ours = accepted.emit as (event: string | symbol, ...args: unknown[]) => boolean;
    const theirs = function (this: net.Socket, event: string | symbol, ...args: unknown[]): boolean {
      return ours.call(this, event, ...args);
    };
    accepted.emit = theirs as net.Socket['emit'];
    bindings.unbindAll();
    expect(bindings.size).toBe(0);
    expect(accepted.emit).toBe(theirs);
    const runsBefore = runner.runs;
    client.write('c');
    await once(accepted, 'data');
    expect(runner.runs).toBe(runsBefore);
    client.destroy();
    accepted.destroy();
    server.close();
  });
});
