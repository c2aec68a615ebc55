/**
 * The `pprofEndpoints` option: off by default; one of two forms.
 *
 *   { listen: { port, host = '127.0.0.1' }, authorize?, maxSeconds? }   a separate listener
 *   { prefix = '/debug/pprof', authorize, maxSeconds? }                 routes on the app itself
 *
 * The app form needs `authorize`: whoever reaches the app could otherwise hold the profiler
 * and read the code's hot paths. So does a listener on a non-loopback host.
 */
import type { IncomingMessage } from 'node:http';
import type { FastifyRequest } from 'fastify';
import { ProfilingOptionError } from '../errors';

/** Decides whether a caller may read profiles; a throw or rejection counts as "no". */
export type PprofAuthorize<Request> = (request: Request) => boolean | Promise<boolean>;

export interface PprofListenEndpoints {
  /** a separate HTTP listener for the endpoints, started when the app is ready */
  listen: { port: number; host?: string };
  prefix?: never;
  /** optional on a loopback host, required on any other */
  authorize?: PprofAuthorize<IncomingMessage>;
  /** longest `seconds` a caller may ask for (default 60) */
  maxSeconds?: number;
}

export interface PprofAppEndpoints {
  /** where the routes live on the app (default '/debug/pprof') */
  prefix?: string;
  listen?: never;
  /** required: `(request) => boolean | Promise<boolean>` */
  authorize: PprofAuthorize<FastifyRequest>;
  /** longest `seconds` a caller may ask for (default 60) */
  maxSeconds?: number;
}

export type PprofEndpointsOptions = PprofListenEndpoints | PprofAppEndpoints;

export type ResolvedPprofEndpoints =
  | { form: 'listen'; port: number; host: string; basePath: string; authorize?: PprofAuthorize<IncomingMessage>; maxSeconds: number }
  | { form: 'app'; prefix: string; authorize: PprofAuthorize<FastifyRequest>; maxSeconds: number };

export const PPROF_DEFAULTS = {
  host: '127.0.0.1',
  prefix: '/debug/pprof',
  /** Go's default for /profile?seconds */
  seconds: 30,
  maxSeconds: 60,
} as const;

/** Upper bound of maxSeconds itself: a capture holds a request open that long. */
const MAX_MAX_SECONDS = 3600;

export const PPROF_ENDPOINTS_EXPECTED =
  "{ listen: { port, host? }, authorize?, maxSeconds? } (a separate listener) or { prefix?, authorize, maxSeconds? } (routes on the app)";

/** The keys `pprofEndpoints` takes (either form). */
export const PPROF_ENDPOINTS_KEYS = ['listen', 'prefix', 'authorize', 'maxSeconds'] as const;

const AUTHORIZE_EXPECTED = 'a function (request) => boolean | Promise<boolean>';

export function resolvePprofEndpoints(raw: unknown): ResolvedPprofEndpoints | undefined {
  if (raw === undefined) return undefined;
  if (!isPlainObject(raw)) throw new ProfilingOptionError('pprofEndpoints', raw, PPROF_ENDPOINTS_EXPECTED);
  const input = raw as Record<string, unknown>;
  const known: readonly string[] = PPROF_ENDPOINTS_KEYS;
  for (const key of Object.keys(input)) {
    if (!known.includes(key)) throw new ProfilingOptionError(`pprofEndpoints.${key}`, input[key], `a known key (${known.join(', ')})`);
  }
  if (input.listen !== undefined && input.prefix !== undefined) {
    throw new ProfilingOptionError('pprofEndpoints', raw, `either "listen" (a separate listener) or "prefix" (routes on the app), not both`);
  }
  const authorize = input.authorize;
  if (authorize !== undefined && typeof authorize !== 'function') {
    throw new ProfilingOptionError('pprofEndpoints.authorize', authorize, AUTHORIZE_EXPECTED);
  }
  const maxSeconds = input.maxSeconds ?? PPROF_DEFAULTS.maxSeconds;
  if (typeof maxSeconds !== 'number' || !Number.isInteger(maxSeconds) || maxSeconds < 1 || maxSeconds > MAX_MAX_SECONDS) {
    throw new ProfilingOptionError('pprofEndpoints.maxSeconds', maxSeconds, `an integer from 1 to ${MAX_MAX_SECONDS}`);
  }

  if (input.listen !== undefined) {
    const listen = input.listen;
    if (!isPlainObject(listen)) throw new ProfilingOptionError('pprofEndpoints.listen', listen, '{ port, host? }');
    const l = listen as Record<string, unknown>;
    for (const key of Object.keys(l)) {
      if (key !== 'port' && key !== 'host') throw new ProfilingOptionError(`pprofEndpoints.listen.${key}`, l[key], 'a known key (port, host)');
    }
    if (typeof l.port !== 'number' || !Number.isInteger(l.port) || l.port < 0 || l.port > 65535) {
      throw new ProfilingOptionError('pprofEndpoints.listen.port', l.port, 'an integer TCP port from 0 to 65535 (0: any free port, see app.profiler.pprofUrl)');
    }
    const host = l.host ?? PPROF_DEFAULTS.host;
    if (typeof host !== 'string' || host === '' || /[\s/]/.test(host)) {
      throw new ProfilingOptionError('pprofEndpoints.listen.host', host, 'a host name or IP address, e.g. "127.0.0.1"');
    }
    if (authorize === undefined && !isLoopback(host)) {
      throw new ProfilingOptionError(
        'pprofEndpoints.authorize',
        authorize,
        `${AUTHORIZE_EXPECTED}: required when listen.host (${JSON.stringify(host)}) is not a loopback address, since anyone who reaches it could read profiles`,
      );
    }
    return { form: 'listen', port: l.port, host, basePath: PPROF_DEFAULTS.prefix, authorize: authorize as PprofAuthorize<IncomingMessage> | undefined, maxSeconds };
  }

  const prefixRaw = input.prefix ?? PPROF_DEFAULTS.prefix;
  if (typeof prefixRaw !== 'string' || !/^\/[A-Za-z0-9._~/-]*$/.test(prefixRaw) || prefixRaw.replace(/\/+$/, '') === '' || prefixRaw.includes('//')) {
    throw new ProfilingOptionError('pprofEndpoints.prefix', prefixRaw, 'a path such as "/debug/pprof" (letters, digits, "/", ".", "_", "~", "-"; not "/")');
  }
  if (authorize === undefined) {
    throw new ProfilingOptionError(
      'pprofEndpoints.authorize',
      authorize,
      `${AUTHORIZE_EXPECTED}: required when the endpoints are routes on the app (anyone who reaches the app could read profiles); or use { listen: { port } } for a loopback-only listener`,
    );
  }
  return { form: 'app', prefix: prefixRaw.replace(/\/+$/, ''), authorize: authorize as PprofAuthorize<FastifyRequest>, maxSeconds };
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

function isPlainObject(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
