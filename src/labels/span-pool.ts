/**
 * Span contexts without an engine holder per request (CPED mode: Node 24+, Node 22 with the flag).
 *
 * Why: a request of a sampled trace needs a sample context of its own (its span), and in CPED
 * mode @datadog/pprof wraps every new context in a native holder: an API object with a weak
 * handle, which the scavenger cannot free, so each one is promoted and lives until a full GC.
 * Measured on Node 24 (/hello traced by the OpenTelemetry SDK, bench:diagnosis): about 10 µs per
 * request, 9 % of the traced request; a holder that keeps 30 small objects alive cost 12 µs more
 * than the same objects in a plain AsyncLocalStorage. Route label sets avoid this by keeping one
 * holder per set; span contexts cannot share one, but they can take turns.
 *
 * How: a request's context is a pooled SpanSlot (its holder made once, kept by the propagator),
 * pointed at the request's SpanSampleContext. Samples keep the slot, and their labels are read
 * from it when the window is cut (time.stop runs generateLabels then), so a slot may point at
 * another request only once (1) no code of its request can run any more and (2) every sample
 * taken while it pointed there has been resolved:
 * 1. the request also enters a marker object in an AsyncLocalStorage of ours, in the same step
 *    as the slot: every async frame that holds the slot's holder holds the marker (a nested run
 *    replaces both), so when the marker has been garbage collected (FinalizationRegistry), no
 *    callback, timer or promise of that request is left, background work after the reply
 *    included;
 * 2. it is then free from the next cut on (samplesResolved()).
 * The slot never changes while its request can run, so attribution stays exact. The pool is
 * bounded (MAX_SLOTS); when every slot is busy, a request gets a fresh context as before
 * (counted in `unpooled`). One pool per session: holders belong to the engine session that
 * made them, so a new session starts with an empty pool.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { LabelPropagator } from './propagation';
import { SpanSlot, type SpanSampleContext } from './spans';

/**
 * Slots at most: each is a small object plus the engine's holder (a native object, a handle and a
 * JS wrapper, about 250 bytes together). A slot is busy for its request's life plus the time to
 * the next full GC and the next cut (uploadRate): 16,384 slots cover about 1,000 sampled
 * requests a second at the default uploadRate of 15 s; beyond that, requests get fresh
 * contexts, which cost what they cost before the pool.
 */
export const MAX_SLOTS = 16_384;


/** Counted over the process's life (pools come and go with sessions). */
export interface SpanPoolCounters {
  /** slots made (each with its engine holder) */
  slots: number;
  /** requests served by a slot a previous request had used */
  reused: number;
  /** requests given a fresh context because every slot was busy */
  unpooled: number;
}

export class SpanContextPool {
  private readonly markers = new AsyncLocalStorage<object>();
  private readonly registry = new FinalizationRegistry<SpanSlot>((slot) => this.drained.push(slot));
  /** ready for the next request */
  private free: SpanSlot[] = [];
  /** their requests are gone; free after the next cut */
  private drained: SpanSlot[] = [];
  /** made by this pool (the bound is per pool: a session's holders die with the session) */
  private slots = 0;

  constructor(
    private readonly counters: SpanPoolCounters,
    private readonly maxSlots = MAX_SLOTS,
  ) {}

  /** Runs `fn` with `context` as the sample context, through a pooled slot when one is free. */
  run<T>(propagator: LabelPropagator, context: SpanSampleContext, fn: () => T): T {
    let slot = this.free.pop();
    if (slot !== undefined) {
      slot.context = context;
      this.counters.reused++;
    } else if (this.slots < this.maxSlots) {
      slot = new SpanSlot(context);
      this.slots++;
      this.counters.slots++;
    } else {
      this.counters.unpooled++;
      return propagator.run(context, fn);
    }
    const marker = {};
    this.registry.register(marker, slot);
    // the slot is a reused context: the propagator keeps its holder
    return propagator.run(slot, () => this.markers.run(marker, fn), true);
  }

  /** Every sample taken so far has its labels (a window was cut): drained slots can serve again. */
  samplesResolved(): void {
    if (this.drained.length === 0) return;
    for (const slot of this.drained) {
      slot.context = undefined;
      this.free.push(slot);
    }
    this.drained = [];
  }

}
