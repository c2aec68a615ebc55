/** The CPU trigger: the existing meter (src/cpu-usage.ts), read every check. */
import type { CpuUsageMeter } from '../cpu-usage';
import type { Trigger } from './trigger';

export class CpuSignal implements Trigger {
  readonly signal = 'cpu' as const;

  constructor(
    private readonly meter: CpuUsageMeter,
    readonly threshold: number | false,
  ) {}

  read(): Promise<number> {
    return this.meter.measure();
  }

  /** Which threads used the CPU: a session started by busy worker threads says so. */
  explain(): string | undefined {
    const split = this.meter.lastSplit;
    return split && `main thread ${split.mainThread}‰, other threads (workers, GC, libuv pool) ${split.otherThreads}‰`;
  }

  /** A new baseline: the next read covers only the time from now. */
  restart(): Promise<void> {
    return this.meter.baseline();
  }
}
