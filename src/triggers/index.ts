/**
 * Triggers: the signals that can start a session by themselves, each behind one small interface
 * the controller polls every `checkInterval`.
 *
 *   cpu        process CPU time over wall time, per mille of the CPU available (cpu.ts)
 *   eventLoop  event-loop utilization over the interval (event-loop.ts)
 *   heap       used V8 heap over V8's heap limit (heap.ts)
 *   memory     RSS over the cgroup memory limit, else total memory (memory.ts)
 *
 * Every signal is read at every check, enabled or not, so stats() shows all current readings;
 * only a trigger with a threshold can start a session.
 */
import type { CpuUsageMeter } from '../cpu-usage';
import { CpuSignal } from './cpu';
import { EventLoopSignal } from './event-loop';
import { HeapSignal } from './heap';
import { MemorySignal } from './memory';
import type { Trigger, TriggerSignal } from './trigger';

export { CpuSignal, EventLoopSignal, HeapSignal, MemorySignal };
export { readCgroupMemoryLimit, memoryAvailable } from './memory';
export { perMille, type Trigger, type TriggerCause, type TriggerSignal } from './trigger';

/** The names stats() gives each signal's current reading. */
export const READING_NAMES = {
  cpu: 'cpuUsage',
  eventLoop: 'eventLoopUtilization',
  heap: 'heapUsage',
  memory: 'memoryUsage',
} as const satisfies Record<TriggerSignal, string>;

export type Readings = { [K in (typeof READING_NAMES)[TriggerSignal]]: number };

export const NO_READINGS: Readings = { cpuUsage: 0, eventLoopUtilization: 0, heapUsage: 0, memoryUsage: 0 };

export interface TriggerThresholds {
  cpuThreshold: number | false;
  eventLoopThreshold: number | false;
  heapThreshold: number | false;
  memoryThreshold: number | false;
}

/** The four triggers, in the order a check compares them (the first to cross wins). */
export function createTriggers(thresholds: TriggerThresholds, cpu: CpuUsageMeter, memoryLimitBytes: number): Trigger[] {
  return [
    // cpuThreshold 0 is continuous profiling, not a trigger that always fires
    new CpuSignal(cpu, thresholds.cpuThreshold === 0 ? false : thresholds.cpuThreshold),
    new EventLoopSignal(thresholds.eventLoopThreshold),
    new HeapSignal(thresholds.heapThreshold),
    new MemorySignal(thresholds.memoryThreshold, memoryLimitBytes),
  ];
}
