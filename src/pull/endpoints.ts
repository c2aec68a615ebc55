/**
 * The Go-style /debug/pprof endpoints over `Captures`, in two forms: a separate listener
 * (node:http, loopback by default) or routes on the app. Both answer the same way:
 *
 *   GET {base}/profile?seconds=N   CPU profile over the next N s (default 30, 1..maxSeconds)
 *   GET {base}/wall?seconds=N      wall-time profile, the same way
 *   GET {base}/heap                sampled in-use heap now
 *   GET {base}/                    a short index
 *
 * The body is gzipped pprof as `application/octet-stream`, which `go tool pprof` and Grafana
 * Alloy read as they read Go's. Authorization comes before anything else: a refused call gets
 * 401 (no Authorization header) or 403, with a body that says nothing about what runs.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { MinimalLogger } from '../types';
import { ProfileCaptureError, type Captures, type CaptureType } from './capture';
import type { PprofAuthorize, ResolvedPprofEndpoints } from './options';

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer | string;
}

const PROFILE_PATHS: Record<string, CaptureType> = { profile: 'cpu', wall: 'wall', heap: 'heap' };

const text = (status: number, body: string, headers: Record<string, string> = {}): Answer => ({
  status,
  headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers },
  body: `${body}\n`,
});

/**
 * The answer to `GET {base}/{name}?query` by an authorized caller. Never rejects.
 * `name` is '' for the index.
 */
export async function answer(captures: Captures, name: string, query: URLSearchParams, logger: MinimalLogger): Promise<Answer> {
  if (name === '') return index(captures.maxSeconds);
  const type = PROFILE_PATHS[name];
  if (type === undefined) return text(404, 'not found');
  const rawSeconds = query.get('seconds');
  let seconds: number | undefined;
  if (rawSeconds !== null) {
    // Go reads it with strconv.ParseInt: whole numbers only ("1.5" and "1e3" are refused)
    seconds = /^[0-9]{1,7}$/.test(rawSeconds) ? Number(rawSeconds) : Number.NaN;
    if (!(seconds >= 1 && seconds <= captures.maxSeconds)) {
      return text(400, `seconds must be a whole number from 1 to ${captures.maxSeconds} (got ${JSON.stringify(rawSeconds.slice(0, 20))})`);
    }
  }
  try {
    const body = await captures.capture({ type, seconds });
    return {
      status: 200,
      headers: {
        'content-type': 'application/octet-stream',
        'content-disposition': `attachment; filename="${name}"`,
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
      },
      body,
    };
  } catch (error) {
    if (error instanceof ProfileCaptureError) {
      const retry: Record<string, string> = error.retryAfterSeconds === undefined ? {} : { 'retry-after': String(error.retryAfterSeconds) };
      return text(error.status, error.message, retry);
    }
    logger.error({ err: error instanceof Error ? error.message : String(error) }, 'continuous profiling: a pprof capture failed');
    return text(500, 'the profile could not be collected');
  }
}

function index(maxSeconds: number): Answer {
  const html = `<!DOCTYPE html>
<html><head><title>/debug/pprof</title></head><body>
<p>Profiles (gzipped pprof; read with <code>go tool pprof URL</code>):</p>
<ul>
<li><a href="profile?seconds=30">profile</a>: CPU time over <code>?seconds=N</code> (default 30, at most ${maxSeconds})</li>
<li><a href="wall?seconds=30">wall</a>: wall time over <code>?seconds=N</code></li>
<li><a href="heap">heap</a>: sampled in-use heap (inuse_objects, inuse_space)</li>
</ul>
</body></html>
`;
  return { status: 200, headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }, body: html };
}

/** undefined = allowed; otherwise the refusal. A throwing authorize refuses (logged, without the request). */
async function refusal<R>(authorize: PprofAuthorize<R> | undefined, request: R, hasCredentials: boolean, logger: MinimalLogger): Promise<Answer | undefined> {
  if (authorize === undefined) return undefined;
  let allowed = false;
  try {
    allowed = (await authorize(request)) === true;
  } catch (error) {
    logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'continuous profiling: pprofEndpoints.authorize threw; the call was refused');
  }
  if (allowed) return undefined;
  return hasCredentials ? text(403, 'forbidden') : text(401, 'unauthorized');
}

/** The routes form: GET {prefix}, {prefix}/, {prefix}/profile, /wall, /heap on the app. */
export function registerPprofRoutes(
  app: FastifyInstance,
  captures: Captures,
  options: Extract<ResolvedPprofEndpoints, { form: 'app' }>,
  logger: MinimalLogger,
): void {
  const handle = (name: string) => async (request: FastifyRequest, reply: FastifyReply) => {
    const refused = await refusal(options.authorize, request, request.headers.authorization !== undefined, logger);
    const query = new URLSearchParams(request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '');
    const result = refused ?? (await answer(captures, name, query, logger));
    return reply.code(result.status).headers(result.headers).send(result.body);
  };
  // profiling: false = scrapes carry no route label; no HEAD route, which would run a capture too
  const routeOptions = { exposeHeadRoute: false, config: { profiling: false as const } };
  app.get(options.prefix, routeOptions, handle(''));
  app.get(`${options.prefix}/`, routeOptions, handle(''));
  for (const name of Object.keys(PROFILE_PATHS)) app.get(`${options.prefix}/${name}`, routeOptions, handle(name));
}

/** The listener form: its own node:http server on host:port (127.0.0.1 by default). */
export class PprofListener {
  private server?: http.Server;
  private readonly sockets = new Set<Socket>();
  private urlValue?: string;

  constructor(
    private readonly captures: Captures,
    private readonly options: Extract<ResolvedPprofEndpoints, { form: 'listen' }>,
    private readonly logger: MinimalLogger,
  ) {}

  get url(): string | undefined {
    return this.urlValue;
  }

  /** Listens; a failure (port taken...) is logged, the app runs on without the endpoints. */
  async start(): Promise<void> {
    const server = http.createServer((req, res) => void this.onRequest(req, res));
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    server.on('clientError', (_error, socket) => socket.destroy());
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.options.port, this.options.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      this.logger.error(
        { err: error instanceof Error ? error.message : String(error), host: this.options.host, port: this.options.port },
        'continuous profiling: the pprof endpoints could not listen; the app runs without them',
      );
      return;
    }
    this.server = server;
    const address = server.address() as AddressInfo;
    this.urlValue = `http://${hostForUrl(address.address)}:${address.port}${this.options.basePath}`;
    this.logger.info({ url: this.urlValue }, 'continuous profiling: pprof endpoints listening');
  }

  /** Stops accepting, lets answers in flight finish for at most `timeoutMs`, then cuts the rest. */
  async close(timeoutMs: number): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.urlValue = undefined;
    if (server === undefined) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    await Promise.race([closed, delay(timeoutMs)]);
    server.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://pprof');
      const refused = await refusal(this.options.authorize, req, req.headers.authorization !== undefined, this.logger);
      let result: Answer;
      if (refused !== undefined) result = refused;
      else if (req.method !== 'GET') result = text(405, 'method not allowed', { allow: 'GET' });
      else {
        const base = this.options.basePath;
        const path = url.pathname;
        if (path === base || path === `${base}/`) result = await answer(this.captures, '', url.searchParams, this.logger);
        else if (path.startsWith(`${base}/`) && !path.slice(base.length + 1).includes('/')) {
          result = await answer(this.captures, path.slice(base.length + 1), url.searchParams, this.logger);
        } else result = text(404, 'not found');
      }
      if (res.destroyed) return;
      res.writeHead(result.status, result.headers);
      res.end(result.body);
    } catch {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('error\n');
      }
    }
  }
}

/** A URL host: IPv6 in brackets; the unspecified address (listening everywhere) as loopback. */
export function hostForUrl(address: string): string {
  if (address === '0.0.0.0') return '127.0.0.1';
  if (address === '::') return '[::1]';
  return address.includes(':') ? `[${address}]` : address;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
  });
}
