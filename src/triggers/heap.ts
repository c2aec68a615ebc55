/**
 * The heap trigger: V8's used heap over its heap limit (`v8.getHeapStatistics()`:
 * used_heap_size / heap_size_limit), in per mille, read at the check. The limit is what
 * --max-old-space-size (or V8's default for the machine) allows; past it the process dies
 * with "JavaScript heap out of memory", so this is how close that is.
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
