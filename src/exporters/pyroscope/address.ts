/**
 * Where credentials may go, and which addresses are this machine: shared by the options check,
 * the exporter and anything that must tell loopback from the network.
 */
import { ProfilingOptionError } from '../../errors';

/**
 * For options validation: the problem, as text, when credentials would travel over plain http
 * to a host other than this machine; undefined when that is fine (https, loopback, no credentials,
 * or an address that is not a URL at all: that is reported elsewhere).
 */
export function insecureAuthProblem(serverAddress: string, hasCredentials: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(serverAddress);
  } catch {
    return undefined;
  }
  const credentials = hasCredentials || url.username !== '' || url.password !== '';
  if (!credentials || url.protocol !== 'http:' || isLoopbackHost(url.hostname)) return undefined;
  // only the problem: the caller adds the remedy (https, or allowInsecureAuth: true)
  return `credentials would be sent unencrypted over plain http to "${url.host}"`;
}

/** localhost, *.localhost, 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (host === '::1' || host === '0:0:0:0:0:0:0:1') return true;
  if (/^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(host)) return true; // ::ffff:127.x.y.z as URL writes it
  const ipv4 = host.replace(/^::ffff:/, '');
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(ipv4);
}

// ---------------------------------------------------------------------------------------------
// The request: endpoint, query, headers
// ---------------------------------------------------------------------------------------------

/** `serverAddress` as a URL; refused unless it is http or https. Shared with the options check. */
export function parseHttpUrl(serverAddress: string): URL {
  let url: URL | undefined;
  try {
    url = new URL(serverAddress);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new ProfilingOptionError('serverAddress', serverAddress, 'an http:// or https:// URL such as "http://localhost:4040"');
  }
  return url;
}
