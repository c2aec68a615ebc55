/**
 * The Pyroscope exporter's own timers, over injectable setTimeout/clearTimeout: unref'd unless
 * said otherwise (they never keep the process alive), all cleared at close; and the sleep
 * before a retry, which close() and evictions cut short (wake).
 */
import type { Timers } from './attempt';

export class OwnedTimers {
  readonly #timers: Timers;
  readonly #live = new Set<unknown>();
  #wake: (() => void) | undefined;

  constructor(timers: Timers) {
    this.#timers = timers;
  }

  /** A timer that does not keep the process alive and is cleared by clearAll(). */
  schedule(fn: () => void, ms: number): unknown {
    const handle = this.#timers.setTimeout(() => {
      this.#live.delete(handle);
      fn();
    }, ms);
    (handle as { unref?: () => void } | null)?.unref?.();
    this.#live.add(handle);
    return handle;
  }

  /** A timer that keeps the process alive until it fires or clearAll(): for a deadline that must settle. */
  scheduleRef(fn: () => void, ms: number): void {
    this.#live.add(this.#timers.setTimeout(fn, ms));
  }

  cancel(handle: unknown): void {
    this.#timers.clearTimeout(handle);
    this.#live.delete(handle);
  }

  /** Sleep that wake() cuts short ('woken'). */
  sleep(ms: number): Promise<'elapsed' | 'woken'> {
    return new Promise((resolve) => {
      const timer = this.schedule(() => {
        this.#wake = undefined;
        resolve('elapsed');
      }, ms);
      this.#wake = () => {
        this.#wake = undefined;
        this.cancel(timer);
        resolve('woken');
      };
    });
  }

  /** Ends the running sleep, if any. */
  wake(): void {
    this.#wake?.();
  }

  clearAll(): void {
    for (const timer of this.#live) this.#timers.clearTimeout(timer);
    this.#live.clear();
  }
}
