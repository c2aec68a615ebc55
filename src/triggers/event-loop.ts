/**
 * The event-loop trigger: event-loop utilization (ELU) over the check interval, in per mille.
 *
 * ELU is Node's own measure of a saturated loop (perf_hooks `performance.eventLoopUtilization()`):
 * the share of wall time the loop spent outside its wait for I/O and timers. A loop blocked
 * in `Atomics.wait`, a sync file read or a sync crypto call reads near 1000 ‰ while its CPU
 * usage stays near 0, which the CPU trigger cannot see.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { perMille, type Trigger } from './trigger';

export class EventLoopSignal implements Trigger {
  readonly signal = 'eventLoop' as const;
  private previous: EventLoopUtilization = performance.eventLoopUtilization();

  constructor(readonly threshold: number | false) {}

  read(): number {
    const current = performance.eventLoopUtilization();
    const delta = performance.eventLoopUtilization(current, this.previous);
    this.previous = current;
    return perMille(delta.active, delta.active + delta.idle);
  }

  restart(): void {
    this.previous = performance.eventLoopUtilization();
  }
}
