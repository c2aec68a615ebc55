/**
 * Options: the TypeBox schema (which also gives the public static type), assembled from one piece
 * per group next to its defaults and resolver (destination.ts, labels.ts, sessions.ts,
 * profiles.ts, delivery.ts; pprofEndpoints in src/pull/options.ts, maxWorkers in
 * src/workers/options.ts), the shape check, and
 * `resolveOptions`: check the shape, merge the defaults and PYROSCOPE_* variables once, resolve
 * every group.
 *
 * `resolveOptions` either returns a complete, valid `ResolvedOptions` or throws a
 * `ProfilingOptionError` naming every option that was wrong, the value received and what is allowed.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { PPROF_ENDPOINTS_EXPECTED, resolvePprofEndpoints, type PprofEndpointsOptions, type ResolvedPprofEndpoints } from '../pull/options';
import { OptionProblems, opt } from './checks';
import { DELIVERY_DEFAULTS, DeliverySchema, resolveDelivery, type ResolvedDelivery } from './delivery';
import { DESTINATION_DEFAULTS, DestinationSchema, ENV_VARIABLES, resolveDestination, type ResolvedDestination } from './destination';
import { LABELS_DEFAULTS, LabelsSchema, resolveLabels, type ResolvedLabels } from './labels';
import { PROFILES_DEFAULTS, ProfilesSchema, resolveProfiles, type ResolvedProfiles } from './profiles';
import { SESSIONS_DEFAULTS, SessionsSchema, resolveSessions, type ResolvedSessions } from './sessions';
import { WORKERS_DEFAULTS, WorkersSchema, resolveWorkers, type ResolvedWorkers } from '../workers/options';

export { ENV_VARIABLES } from './destination';

export const OptionsSchema = Type.Object(
  {
    ...DestinationSchema,
    ...LabelsSchema,
    ...SessionsSchema,
    ...ProfilesSchema,
    ...DeliverySchema,
    ...WorkersSchema,
    enabled: Type.Optional(opt(Type.Boolean(), 'true or false')),
    // holds functions (authorize): checked by resolvePprofEndpoints, not by the schema
    pprofEndpoints: Type.Optional(opt(Type.Unsafe<PprofEndpointsOptions>(Type.Any()), PPROF_ENDPOINTS_EXPECTED)),
  },
  { additionalProperties: false },
);

/** The options a user passes to `app.register(profilingPlugin, options)`. */
export type ProfilingOptions = Static<typeof OptionsSchema>;

export interface ResolvedOptions extends ResolvedDestination, ResolvedLabels, ResolvedSessions, ResolvedProfiles, ResolvedDelivery, ResolvedWorkers {
  enabled: boolean;
  /** the /debug/pprof endpoints; undefined = off */
  pprofEndpoints?: ResolvedPprofEndpoints;
}

export const DEFAULTS = {
  enabled: true,
  ...DESTINATION_DEFAULTS,
  ...LABELS_DEFAULTS,
  ...SESSIONS_DEFAULTS,
  ...PROFILES_DEFAULTS,
  ...DELIVERY_DEFAULTS,
  ...WORKERS_DEFAULTS,
} as const;

type Env = Readonly<Record<string, string | undefined>>;

export function resolveOptions(raw: unknown, env: Env = process.env): ResolvedOptions {
  const problems = new OptionProblems();
  const given = checkShape(raw ?? {}, problems);
  const o = withDefaults(given, env);
  const resolved: ResolvedOptions = {
    enabled: o.enabled,
    ...resolveDestination(o, problems),
    ...resolveLabels(o, problems),
    ...resolveSessions(o, problems),
    ...resolveProfiles(o, problems, given),
    ...resolveDelivery(o, problems),
    ...resolveWorkers(o, problems),
    pprofEndpoints: problems.attempt(() => resolvePprofEndpoints(o.pprofEndpoints), undefined),
  };
  problems.throwIfAny();
  return resolved;
}

/** The given options over the defaults (object options merged field by field); an absent option read from its PYROSCOPE_* variable. */
function withDefaults(given: ProfilingOptions, env: Env) {
  const fromEnv = (key: keyof typeof ENV_VARIABLES): string | undefined => {
    const explicit = given[key];
    if (explicit !== undefined) return explicit;
    const value = env[ENV_VARIABLES[key]];
    return value === undefined || value === '' ? undefined : value;
  };
  return {
    ...DEFAULTS,
    ...given,
    profileTypes: { ...DEFAULTS.profileTypes, ...given.profileTypes },
    labels: { ...DEFAULTS.labels, ...given.labels },
    appName: fromEnv('appName'),
    serverAddress: fromEnv('serverAddress'),
    authToken: fromEnv('authToken'),
    basicAuthUser: fromEnv('basicAuthUser'),
    basicAuthPassword: fromEnv('basicAuthPassword'),
    tenantID: fromEnv('tenantID'),
  };
}

/**
 * Structure and types, by the schema; unknown keys (including `__proto__`) are refused. Every
 * problem is recorded (the first per option); an option with one is left out, so the value
 * checks that follow see it as absent instead of reporting it twice.
 */
function checkShape(raw: unknown, problems: OptionProblems): ProfilingOptions {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    problems.add('options', raw, 'an object');
    problems.throwIfAny();
  }
  const known = OptionsSchema.properties as Record<string, TSchema>;
  // Fastify hands plugins a copy that may carry `undefined` for omitted keys: treat as absent.
  const cleaned: Record<string, unknown> = {};
  for (const key of Object.keys(raw as object)) {
    const value = (raw as Record<string, unknown>)[key];
    if (!Object.prototype.hasOwnProperty.call(known, key)) {
      problems.add(key, value, `a known option (unknown option "${key}"; known: ${Object.keys(known).join(', ')})`);
    } else if (value !== undefined) {
      cleaned[key] = value;
    }
  }
  // A Map, Date or class instance passes a structural check as `{}`: it would be silently empty.
  for (const key of OBJECT_OPTIONS) {
    const value = cleaned[key];
    if (value !== undefined && !isPlainObject(value)) {
      problems.add(key, value, (known[key] as TSchema & { expected: string }).expected);
      delete cleaned[key];
    }
  }

  const reported = new Set<string>();
  for (const error of Value.Errors(OptionsSchema, cleaned)) {
    const key = error.path.split('/')[1] ?? 'options';
    if (reported.has(key)) continue;
    reported.add(key);
    const schema = known[key] as TSchema & { expected?: string };
    const nested = error.path.split('/').slice(2).join('.');
    const option = nested ? `${key}.${nested}` : key;
    const value = nested ? error.value : cleaned[key];
    problems.add(option, value, schema?.expected ?? error.message);
  }
  for (const key of reported) delete cleaned[key];
  return cleaned as ProfilingOptions;
}

const OBJECT_OPTIONS = ['headers', 'tags', 'profileTypes', 'labels'] as const;

function isPlainObject(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
