/**
 * The relay's waits for the workers' pieces (relay.ts): one per cut, over the threads it waits
 * for, ended when all answered, at its timeout (who did not answer missed it), or at close.
 */

interface PendingCut<R> {
  /** threads whose piece for this cut is awaited */
  waiting: Set<number>;
  /** the consumers in at the cut: the pieces answering it are theirs */
  recipients: R;
  done: () => void;
}

export class CutWaits<R> {
  private readonly pending = new Map<number, PendingCut<R>>();

  /** `missed(threadId)`: a thread did not answer a cut in time. */
  constructor(private readonly missed: (threadId: number) => void) {}

  /**
   * Waits at most `timeoutMs` for `waiting` to answer cut `id`. `keepAlive`: the wait holds the
   * process up (the last window's, which close() awaits); other waits never do.
   */
  wait(id: number, waiting: Set<number>, recipients: R, timeoutMs: number, keepAlive: boolean): Promise<void> {
    if (waiting.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.expire(id), timeoutMs);
      if (!keepAlive) timer.unref();
      this.pending.set(id, {
        waiting,
        recipients,
        done: () => {
          clearTimeout(timer);
          this.pending.delete(id);
          resolve();
        },
      });
    });
  }

  /** The recipients of a piece from `threadId` answering cut `id` (a leave: the oldest cut waiting for it), and that cut counts it answered; undefined when none waits for it. */
  answer(threadId: number, id: number | 'oldest'): R | undefined {
    const cut = id === 'oldest' ? [...this.pending.values()].find((c) => c.waiting.has(threadId)) : this.pending.get(id);
    if (cut === undefined || !cut.waiting.delete(threadId)) return undefined;
    if (cut.waiting.size === 0) cut.done();
    return cut.recipients;
  }

  /** No cut waits for `threadId` any more (it left, failed, is gone). */
  release(threadId: number): void {
    for (const cut of [...this.pending.values()]) {
      if (cut.waiting.delete(threadId) && cut.waiting.size === 0) cut.done();
    }
  }

  /** Every wait ends now (close). */
  endAll(): void {
    for (const cut of [...this.pending.values()]) cut.done();
  }

  private expire(id: number): void {
    const cut = this.pending.get(id);
    if (cut === undefined) return;
    for (const threadId of cut.waiting) this.missed(threadId);
    cut.done();
  }
}
