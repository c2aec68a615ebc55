/**
 * Options group: where profiles go and who may read them. The Pyroscope application name,
 * server address, credentials (token or basic auth), tenant and extra headers, the https rule
 * for credentials, and `outputDir` (pprof files) as the other destination; the PYROSCOPE_*
 * environment variables that fill them.
 */
import { Type } from '@sinclair/typebox';
import { insecureAuthProblem, parseHttpUrl } from '../exporters/pyroscope';
import { ProfilingOptionError } from '../errors';
import { APP_NAME_PATTERN } from '../pyroscope-rules';
import { StringMap, isDirectoryPath, opt, type Given, type OptionProblems, type WithDefaults } from './checks';

export const DestinationSchema = {
  appName: Type.Optional(opt(Type.String(), 'a Pyroscope application name of letters, digits, "_", ".", "-" and "/"')),
  serverAddress: Type.Optional(opt(Type.String(), 'an http:// or https:// URL such as "http://localhost:4040"')),
  authToken: Type.Optional(opt(Type.String(), 'a string (sent as "Authorization: Bearer <token>")')),
  basicAuthUser: Type.Optional(opt(Type.String(), 'a string')),
  basicAuthPassword: Type.Optional(opt(Type.String(), 'a string')),
  tenantID: Type.Optional(opt(Type.String(), 'a string (sent as X-Scope-OrgID)')),
  headers: Type.Optional(opt(StringMap, 'an object of header names to string values')),
  allowInsecureAuth: Type.Optional(opt(Type.Boolean(), 'true or false')),
  outputDir: Type.Optional(opt(Type.String(), 'a directory path')),
};

export const DESTINATION_DEFAULTS = { allowInsecureAuth: false } as const;

/** Environment variables the official Pyroscope SDKs read, and the option each fills. */
export const ENV_VARIABLES = {
  appName: 'PYROSCOPE_APPLICATION_NAME',
  serverAddress: 'PYROSCOPE_SERVER_ADDRESS',
  authToken: 'PYROSCOPE_AUTH_TOKEN',
  basicAuthUser: 'PYROSCOPE_BASIC_AUTH_USER',
  basicAuthPassword: 'PYROSCOPE_BASIC_AUTH_PASSWORD',
  tenantID: 'PYROSCOPE_TENANT_ID',
} as const;

/** The options as given, with the environment variables filled in where an option is absent. */
export type DestinationInput = WithDefaults<Given<typeof DestinationSchema>, typeof DESTINATION_DEFAULTS> & { enabled: boolean };

export interface ResolvedDestination {
  appName: string;
  serverAddress?: string;
  authToken?: string;
  basicAuthUser?: string;
  basicAuthPassword?: string;
  tenantID?: string;
  headers: Record<string, string>;
  allowInsecureAuth: boolean;
  outputDir?: string;
}

/** Pyroscope stores the app name as the `service_name` label; keep it well inside the label value limit. */
const MAX_APP_NAME_LENGTH = 512;

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export function resolveDestination(o: DestinationInput, problems: OptionProblems): ResolvedDestination {
  const { appName, outputDir } = o;
  const serverAddress = problems.attempt(() => normalizeServerAddress(o.serverAddress), undefined);
  if (o.enabled) {
    if (appName === undefined && !problems.has('appName')) {
      problems.add('appName', undefined, `a Pyroscope application name (or the ${ENV_VARIABLES.appName} environment variable)`);
    }
    if (o.serverAddress === undefined && outputDir === undefined && !problems.has('serverAddress') && !problems.has('outputDir')) {
      problems.add(
        'serverAddress',
        undefined,
        `a Pyroscope URL (or the ${ENV_VARIABLES.serverAddress} environment variable), or "outputDir" to write profiles to disk`,
      );
    }
  }
  if (appName !== undefined && (!APP_NAME_PATTERN.test(appName) || appName.length > MAX_APP_NAME_LENGTH)) {
    problems.add('appName', appName, `a name of 1 to ${MAX_APP_NAME_LENGTH} letters, digits, "_", ".", "-" and "/"`);
  }
  if (outputDir !== undefined) isDirectoryPath(problems, 'outputDir', outputDir);
  const credentials = resolveCredentials(o, problems);
  if (serverAddress !== undefined && !o.allowInsecureAuth) {
    const problem = insecureAuthProblem(serverAddress, hasCredentials(credentials));
    if (problem !== undefined) problems.add('serverAddress', serverAddress, `${problem}; use https, or set allowInsecureAuth: true`);
  }
  return { appName: appName ?? '', serverAddress, ...credentials, allowInsecureAuth: o.allowInsecureAuth, outputDir };
}

type Credentials = Pick<ResolvedDestination, 'authToken' | 'basicAuthUser' | 'basicAuthPassword' | 'tenantID' | 'headers'>;

/** Token or basic auth (not both, a user with its password), tenant and headers: all sent as HTTP headers. */
function resolveCredentials(o: DestinationInput, problems: OptionProblems): Credentials {
  const authToken = headerSafe(problems, 'authToken', o.authToken);
  const basicAuthUser = headerSafe(problems, 'basicAuthUser', o.basicAuthUser, { char: ':', why: 'a user name without ":" (basic auth separates user and password with it)' });
  const basicAuthPassword = headerSafe(problems, 'basicAuthPassword', o.basicAuthPassword);
  const tenantID = headerSafe(problems, 'tenantID', o.tenantID);
  if (authToken !== undefined && (basicAuthUser !== undefined || basicAuthPassword !== undefined)) {
    problems.add('authToken', authToken, 'either authToken or basicAuthUser/basicAuthPassword, not both');
  }
  const basicAuthGiven = [o.basicAuthUser, o.basicAuthPassword].map((v) => v !== undefined);
  if (basicAuthGiven[0] !== basicAuthGiven[1] && !problems.has('basicAuthUser') && !problems.has('basicAuthPassword')) {
    const missing = basicAuthGiven[0] ? 'basicAuthPassword' : 'basicAuthUser';
    problems.add(missing, undefined, 'basicAuthUser and basicAuthPassword to be given together');
  }
  const headers = { ...(o.headers ?? {}) };
  for (const name of Object.keys(headers)) {
    if (!HEADER_NAME.test(name)) problems.add(`headers.${name}`, name, 'a valid HTTP header name');
    else if (/[\r\n\0]/.test(headers[name])) problems.add(`headers.${name}`, headers[name], 'a header value without line breaks');
  }
  return { authToken, basicAuthUser, basicAuthPassword, tenantID, headers };
}

function hasCredentials(c: Credentials): boolean {
  return c.authToken !== undefined || c.basicAuthUser !== undefined || Object.keys(c.headers).some((name) => name.toLowerCase() === 'authorization');
}

/** Credentials and tenant go into HTTP headers: a control character would break every upload. */
function headerSafe(problems: OptionProblems, option: string, value: string | undefined, extra?: { char: string; why: string }): string | undefined {
  if (value === undefined) return undefined;
  // eslint-disable-next-line no-control-regex
  if (value === '' || /[\u0000-\u001f\u007f]/.test(value)) {
    problems.add(option, value, 'a non-empty string without control characters (it is sent in an HTTP header)');
    return undefined;
  }
  if (extra && value.includes(extra.char)) {
    problems.add(option, value, extra.why);
    return undefined;
  }
  return value;
}

function normalizeServerAddress(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  const url = parseHttpUrl(address);
  if (url.username || url.password) {
    throw new ProfilingOptionError('serverAddress', `${url.protocol}//***@${url.host}`, 'a URL without credentials: use basicAuthUser/basicAuthPassword or authToken');
  }
  if (url.search || url.hash) {
    throw new ProfilingOptionError('serverAddress', address, 'a base URL without query string or fragment');
  }
  return url.href.replace(/\/+$/, '');
}
