/**
 * Options group: when profiling runs. The trigger thresholds (CPU, event loop, heap, memory;
 * `cpuThreshold: 0` = continuous), the bounds on automatic sessions (cooldown, hourly), how
 * often triggers are read, how long a session lasts and how often it uploads.
 */
import { Type } from '@sinclair/typebox';
import { Duration, Threshold, durationIn, integerOrOff, opt, type Given, type OptionProblems, type WithDefaults } from './checks';

export const SessionsSchema = {
  cpuThreshold: Type.Optional(opt(Threshold, 'an integer from 0 to 1000 (per mille of the CPU available; 0 = always on), or false (off)')),
  eventLoopThreshold: Type.Optional(opt(Threshold, 'an integer from 1 to 1000 (per mille event-loop utilization), or false (off, the default)')),
  heapThreshold: Type.Optional(opt(Threshold, "an integer from 1 to 1000 (per mille of V8's heap limit), or false (off, the default)")),
  memoryThreshold: Type.Optional(opt(Threshold, 'an integer from 1 to 1000 (per mille of the memory available: cgroup limit, else total memory), or false (off, the default)')),
  cooldown: Type.Optional(opt(Duration, 'a duration up to 24h, e.g. "10m"; 0 = none')),
  maxSessionsPerHour: Type.Optional(opt(Threshold, 'an integer from 1 to 3600, or false (unbounded, the default)')),
  checkInterval: Type.Optional(opt(Duration, 'a duration of at least 100ms, e.g. 10000 or "10s"')),
  profilingDuration: Type.Optional(opt(Duration, 'a duration of at least 1s, e.g. "2m"')),
  uploadRate: Type.Optional(opt(Duration, 'a duration from 1s to 5m, e.g. "15s"')),
};

export const SESSIONS_DEFAULTS = {
  cpuThreshold: 700,
  eventLoopThreshold: false,
  heapThreshold: false,
  memoryThreshold: false,
  checkInterval: 10_000,
  cooldown: 0,
  maxSessionsPerHour: false,
  profilingDuration: 120_000,
  uploadRate: 15_000,
} as const;

export type SessionsInput = WithDefaults<Given<typeof SessionsSchema>, typeof SESSIONS_DEFAULTS>;

export interface ResolvedSessions {
  /** per mille, or false (off); 0 = continuous */
  cpuThreshold: number | false;
  eventLoopThreshold: number | false;
  heapThreshold: number | false;
  memoryThreshold: number | false;
  /** all durations in milliseconds */
  checkInterval: number;
  /** after an automatically started session, before a trigger may start the next */
  cooldown: number;
  /** automatically started sessions in any 60 minutes; false = unbounded */
  maxSessionsPerHour: number | false;
  profilingDuration: number;
  uploadRate: number;
}

const DAY_MS = 24 * 3_600_000;

export function resolveSessions(o: SessionsInput, problems: OptionProblems): ResolvedSessions {
  const resolved: ResolvedSessions = {
    cpuThreshold: integerOrOff(problems, 'cpuThreshold', o.cpuThreshold, 0, 1000, 'off'),
    eventLoopThreshold: integerOrOff(problems, 'eventLoopThreshold', o.eventLoopThreshold, 1, 1000, 'off'),
    heapThreshold: integerOrOff(problems, 'heapThreshold', o.heapThreshold, 1, 1000, 'off'),
    memoryThreshold: integerOrOff(problems, 'memoryThreshold', o.memoryThreshold, 1, 1000, 'off'),
    maxSessionsPerHour: integerOrOff(problems, 'maxSessionsPerHour', o.maxSessionsPerHour, 1, 3600, 'unbounded'),
    checkInterval: durationIn(problems, 'checkInterval', o.checkInterval, 100, DAY_MS),
    cooldown: durationIn(problems, 'cooldown', o.cooldown, 0, DAY_MS),
    profilingDuration: durationIn(problems, 'profilingDuration', o.profilingDuration, 1000, 7 * DAY_MS),
    uploadRate: durationIn(problems, 'uploadRate', o.uploadRate, 1000, 300_000),
  };
  if (resolved.uploadRate > resolved.profilingDuration) {
    problems.add('uploadRate', o.uploadRate, `a duration no longer than profilingDuration (${resolved.profilingDuration} ms)`);
  }
  return resolved;
}
