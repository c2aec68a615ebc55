/**
 * Where the plugin may be registered: where its hooks reach every route of the process.
 *
 * The profiler samples the whole process, but Fastify hooks are encapsulated: registered inside
 * a plugin that is not wrapped in fastify-plugin, the onRequest hook labels that plugin's routes
 * only (measured: a child at `/c` got 108/108 of its samples labelled, the 6 other routes 0/780),
 * and the root's `app.profiler` is undefined. fastify-cli's `plugins/` folder makes this easy: a
 * plugin file without fastify-plugin is such a child.
 *
 * How Fastify 5 tells the levels apart: the root instance is a plain object (its prototype is
 * Object.prototype); every encapsulated child is `Object.create(parent)` (lib/plugin-override.js),
 * and a plugin wrapped in fastify-plugin gets its parent itself. A non-root instance is not wrong
 * by itself: `fastify start app.js` (fastify-cli without skipOverride) registers the whole app as
 * one child of an empty root, and a plugin file wrapped in fastify-plugin then sits on that child,
 * which holds every route. So a non-root registration is refused when a route exists outside it:
 * - routes declared before it (the router is shared by all levels: any route there is not ours
 *   to know, so it is refused; registering the profiler first is the rule anyway);
 * - routes declared later on an ancestor or in a new child of one: an onRoute hook on each
 *   ancestor throws from that declaration (routes of our own level never reach those hooks, as
 *   Fastify copies a parent's hooks into a child when the child is created).
 */
import type { FastifyInstance } from 'fastify';
import { describeValue, ProfilerRegistrationError } from './errors';

const HOW_TO_FIX =
  'register it on the root instance, or wrap the plugin that registers it in fastify-plugin ' +
  "(module.exports = fp(async (app) => { await app.register(profiling, options) })), before any route; see docs/where-it-works.md";

/** The instances `app` is encapsulated in, nearest first; empty for the root. */
function ancestorsOf(app: FastifyInstance): FastifyInstance[] {
  const ancestors: FastifyInstance[] = [];
  for (let level = Object.getPrototypeOf(app) as object | null; level !== null && level !== Object.prototype; level = Object.getPrototypeOf(level)) {
    ancestors.push(level as FastifyInstance);
  }
  return ancestors;
}

/** find-my-way prints an empty router as '(empty tree)' (an empty string in older versions). */
function routerIsEmpty(app: FastifyInstance): boolean {
  const printed = app.printRoutes().trim();
  return printed === '' || printed === '(empty tree)';
}

/**
 * Throws a ProfilerRegistrationError when `app` is an encapsulated level with routes outside it
 * already, and makes a route declared outside it later throw one, after calling `refused` (the
 * boot fails then, and a failed boot never runs onClose: the plugin frees its process slot there).
 * Nothing to do at the root.
 */
export function guardRegistrationLevel(app: FastifyInstance, pluginName: string, refused: () => void): void {
  const ancestors = ancestorsOf(app);
  if (ancestors.length === 0) return;
  // Fastify's plugin chain of this level starts with the encapsulating plugin (autoload names it by its file)
  const encapsulating = app.pluginName.split(' -> ')[0];
  const where = `${pluginName} was registered inside the encapsulated plugin ${describeValue('plugin', encapsulating)}`;
  if (!routerIsEmpty(app)) {
    throw new ProfilerRegistrationError(
      `${where} after routes were declared: its hooks would label only that plugin's routes while it profiles the whole process; ${HOW_TO_FIX}`,
    );
  }
  for (const ancestor of ancestors) {
    ancestor.addHook('onRoute', (route) => {
      refused();
      throw new ProfilerRegistrationError(
        `${where}, and route ${String(route.method)} ${route.url} is declared outside it: its samples would carry no route; ${HOW_TO_FIX}`,
      );
    });
  }
}
