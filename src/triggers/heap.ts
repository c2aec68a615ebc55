/**
 * The heap trigger: V8's used heap over its heap limit (`v8.getHeapStatistics()`:
 * used_heap_size / heap_size_limit), in per mille, read at the check. The limit is what
 * --max-old-space-size (or V8's default for the machine) allows plus the young generation's
 * reserve; the process dies with "JavaScript heap out of memory" when the old space is full, so
 * this is about how close that is. The reserve differs by Node version (at
 * --max-old-space-size=64 the limit is 112 MiB on Node 20/22, 256 MiB on 24, 160 MiB on 26): with a
 * small heap on Node 24 the reading stays under ~250 ‰ up to the OOM (README says so).
 */
import { getHeapStatistics } from 'node:v8';
import { perMille, type Trigger } from './trigger';

export class HeapSignal implements Trigger {
  readonly signal = 'heap' as const;

  constructor(readonly threshold: number | false) {}

  read(): number {
    const { used_heap_size: used, heap_size_limit: limit } = getHeapStatistics();
    return perMille(used, limit);
  }
}
