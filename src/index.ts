/**
 * fastify-continuous-profiling: continuous CPU, wall and heap profiling for Fastify v5,
 * labelled by route and pushed to Grafana Pyroscope (or written to disk).
 *
 *   import profilingPlugin from 'fastify-continuous-profiling'
 *   await app.register(profilingPlugin, { appName: 'greet', serverAddress: 'http://localhost:4040' })
 */
import { fastifyContinuousProfiling } from './plugin';

export { fastifyContinuousProfiling };
export default fastifyContinuousProfiling;
export type { ProfilerDecorator, ProfilerStats } from './plugin';
export type { LastTrigger, ProfilerState, StartOptions } from './controller';
export type { TriggerCause, TriggerSignal } from './triggers';
export type { ProfilingOptions } from './options';
export { DEFAULTS, ENV_VARIABLES } from './options';
export type { LabelMode, RouteProfilingConfig } from './labels';
export { InvalidLabelError, spanProfilesProcessor } from './labels';
export type { SpanProfileStats } from './labels';
export type { TaskLabels, WorkerStats } from './workers';
export { ProfilingOptionError, ProfilerAlreadyActiveError, ProfilerRegistrationError, type OptionProblem } from './errors';
export { ProfileCaptureError } from './pull';
export type { CaptureOptions, CaptureType, PprofAppEndpoints, PprofAuthorize, PprofEndpointsOptions, PprofListenEndpoints } from './pull';
export { parseDuration } from './duration';
export { fromGoZeroConfig } from './go-zero';
export type { EncodedProfile, Exporter, ExporterStats, ProfileKind } from './types';

// CommonJS: `require('fastify-continuous-profiling')` is the plugin itself, as for other
// Fastify plugins, with `.default`, `.fastifyContinuousProfiling` and the rest as properties.
module.exports = Object.assign(fastifyContinuousProfiling, module.exports);
