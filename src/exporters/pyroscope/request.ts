/**
 * One ingest request: the endpoint, its query (`name`, `from`, `until`, `format`, `spyName`) and
 * its headers (the user's, then content type, authorization and tenant).
 */
import type http from 'node:http';
import type { EncodedProfile } from '../../types';
import { parseHttpUrl } from './address';
import type { PyroscopeExporterOptions } from './options';

export interface IngestEndpoint {
  /** `{serverAddress}/ingest`, without userinfo */
  url: URL;
  /** `scheme://host/path` for logs: no userinfo, no query */
  display: string;
  /** user and password written in the address (`http://user:pass@host`), if any */
  userinfo?: { user: string; password: string };
}

export function parseEndpoint(serverAddress: string): IngestEndpoint {
  const url = parseHttpUrl(serverAddress);
  const userinfo =
    url.username !== '' || url.password !== ''
      ? { user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) }
      : undefined;
  url.username = '';
  url.password = '';
  url.hash = '';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/ingest`;
  return { url, display: `${url.origin}${url.pathname}`, userinfo };
}

/** The ingest `name` parameter: `app` or `app{k=v,k2=v2}` (values are validated by the options). */
export function ingestName(appName: string, tags: Readonly<Record<string, string>>): string {
  const pairs = Object.entries(tags).map(([key, value]) => `${key}=${value}`);
  return pairs.length === 0 ? appName : `${appName}{${pairs.join(',')}}`;
}

/** The full upload URL of one profile. `from`/`until` are unix seconds covering the window. */
export function ingestUrl(endpoint: URL, name: string, profile: EncodedProfile): URL {
  const url = new URL(endpoint.href);
  url.searchParams.set('name', name);
  url.searchParams.set('from', String(Math.floor(profile.startMs / 1000)));
  url.searchParams.set('until', String(Math.ceil(profile.endMs / 1000)));
  url.searchParams.set('format', 'pprof');
  url.searchParams.set('spyName', 'nodespy');
  return url;
}

export interface Credentials {
  authorization?: string;
  tenantID?: string;
  userHeaders: Record<string, string>;
}

export function authorizationHeader(options: PyroscopeExporterOptions, endpoint: IngestEndpoint): string | undefined {
  if (options.authToken) return `Bearer ${options.authToken}`;
  const user = options.basicAuthUser ?? endpoint.userinfo?.user;
  const password = options.basicAuthPassword ?? endpoint.userinfo?.password;
  if (user || password) return `Basic ${Buffer.from(`${user ?? ''}:${password ?? ''}`).toString('base64')}`;
  return undefined;
}

/** Request headers: the user's first, so the protocol's own (type, auth, tenant) win. */
export function requestHeaders(credentials: Credentials, bodyLength: number): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = { ...credentials.userHeaders };
  headers['content-type'] = 'application/octet-stream';
  headers['content-length'] = bodyLength;
  if (credentials.authorization !== undefined) headers['authorization'] = credentials.authorization;
  if (credentials.tenantID) headers['x-scope-orgid'] = credentials.tenantID;
  return headers;
}
