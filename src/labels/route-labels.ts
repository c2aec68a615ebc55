/**
 * The label set of a request, from its route: built once per route (+ method) and reused, so
 * the request path does one `routeOptions` read and two map lookups, and allocates nothing else.
 */
import type { Labels } from '../types';
import {
  extendLabels,
  METHOD_LABEL,
  NOT_FOUND_ROUTE,
  ROUTE_LABEL,
  sanitizedRoute,
  type LabelSetDrops,
} from './label-set';

/** Per-route settings, read from `config.profiling` of the route. */
export type RouteProfilingConfig = false | { labels?: Record<string, string> };

/** What the cache needs from a Fastify request (typed loosely so tests can pass plain objects). */
export interface RoutedRequest {
  readonly method: string;
  readonly routeOptions: { readonly url?: string; readonly config?: unknown };
}

export interface RouteLabelSettings {
  route: boolean;
  method: boolean;
  maxLabels: number;
}

/** Requests whose route has no config object (should not happen in Fastify 5) share this key. */
const NO_CONFIG = {};
/** Cached "this route gets no labels". */
const NO_LABELS = null;

export class RouteLabelCache {
  /**
   * Keyed by the route's config object, which Fastify creates once per route and which holds
   * the route's url and its `profiling` setting; the inner map by request method (bounded by
   * the methods Node's HTTP parser accepts). A WeakMap, so routes of a closed app are freed.
   */
  private readonly byRoute = new WeakMap<object, Map<string, Labels | null>>();

  constructor(
    private readonly settings: RouteLabelSettings,
    private readonly drops: LabelSetDrops,
  ) {}

  /** The label set for `request`, or undefined when the request gets none. */
  labelsFor(request: RoutedRequest): Labels | undefined {
    // The routeOptions getter allocates: read it once.
    const routeOptions = request.routeOptions;
    const config = routeOptions.config;
    const key = config !== null && typeof config === 'object' ? config : NO_CONFIG;
    let byMethod = this.byRoute.get(key);
    if (byMethod === undefined) {
      byMethod = new Map();
      this.byRoute.set(key, byMethod);
    }
    const method = this.settings.method ? request.method : '';
    let labels = byMethod.get(method);
    if (labels === undefined) {
      labels = this.build(routeOptions.url, method, key === NO_CONFIG ? undefined : config);
      byMethod.set(method, labels);
    }
    return labels ?? undefined;
  }

  private build(url: string | undefined, method: string, config: unknown): Labels | null {
    const profiling = (config as { profiling?: unknown } | undefined)?.profiling;
    if (profiling === false) return NO_LABELS;
    const builtin: Record<string, string> = {};
    if (this.settings.route) builtin[ROUTE_LABEL] = url === undefined ? NOT_FOUND_ROUTE : sanitizedRoute(url);
    if (this.settings.method && method.length > 0) builtin[METHOD_LABEL] = method;
    // Static labels were validated at registration when the route was added after the plugin;
    // routes added before it are checked here, and bad entries are dropped and counted (never
    // thrown into a request).
    const staticLabels = staticLabelsOf(profiling);
    const labels = extendLabels(Object.freeze(builtin), staticLabels, this.settings.maxLabels, this.drops);
    return Object.keys(labels).length === 0 ? NO_LABELS : labels;
  }
}

function staticLabelsOf(profiling: unknown): Readonly<Record<string, unknown>> {
  if (profiling === null || typeof profiling !== 'object') return {};
  const labels = (profiling as { labels?: unknown }).labels;
  return labels !== null && typeof labels === 'object' ? (labels as Record<string, unknown>) : {};
}
