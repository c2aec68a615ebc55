/**
 * The span context pool (src/labels/span-pool.ts) on its own: when a slot may serve another
 * request. A fake propagator stands for the engine (it records what it was asked to enter); the
 * garbage collector and FinalizationRegistry are real (gc exposed at run time).
 * The same pool under real tracing and load: test/span-profiles.test.ts, setup http-reuse.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { LabelPropagator, SampleContext } from '../src/labels/propagation';
import { SpanContextPool, type SpanPoolCounters } from '../src/labels/span-pool';
import { SpanSampleContext, SpanSlot, spanContextOf, type OtelSpan } from '../src/labels/spans';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

class RecordingPropagator implements LabelPropagator {
  readonly mode = 'cped' as const;
  readonly engineErrors = 0;
  readonly entered: Array<{ context: SampleContext; reused: boolean }> = [];
  enable(): void {}
  disable(): void {}
  current(): SampleContext | undefined {
    return undefined;
  }
  run<T>(context: SampleContext, fn: () => T, reused = false): T {
    this.entered.push({ context, reused });
    return fn();
  }
}

function spanContext(spanId: string): SpanSampleContext {
  const root: OtelSpan = {
    name: `GET /${spanId}`,
    spanContext: () => ({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId, traceFlags: 1 }),
    setAttribute: () => undefined,
  };
  return new SpanSampleContext(Object.freeze({ route: '/r' }), root);
}

const counters = (): SpanPoolCounters => ({ slots: 0, reused: 0, unpooled: 0 });
const tick = (ms = 0): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Full GCs and task turns until FinalizationRegistry callbacks have had their chance. */
async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    gc();
    await tick(5);
  }
}

/** The slot the propagator was last asked to enter. */
function lastSlot(p: RecordingPropagator): SpanSlot {
  const last = p.entered[p.entered.length - 1];
  expect(last.context).toBeInstanceOf(SpanSlot);
  expect(last.reused).toBe(true); // the propagator keeps one engine holder per slot
  return last.context as SpanSlot;
}

describe('span context pool', () => {
  test('a finished request\'s slot serves again only after a GC and a cut; the cut lets go of the old span', async () => {
    const p = new RecordingPropagator();
    const c = counters();
    const pool = new SpanContextPool(c);
    const first = spanContext('00f067aa0ba902b7');
    pool.run(p, first, () => undefined);
    const slot = lastSlot(p);
    expect(spanContextOf(slot)).toBe(first);

    // a cut before the request's marker is collected frees nothing
    pool.samplesResolved();
    pool.run(p, spanContext('1111111111111111'), () => undefined);
    expect(lastSlot(p)).not.toBe(slot);
    expect(c).toEqual({ slots: 2, reused: 0, unpooled: 0 });

    // collected but no cut since: samples taken under `first` may still be unresolved
    await collectGarbage();
    pool.run(p, spanContext('2222222222222222'), () => undefined);
    expect(lastSlot(p)).not.toBe(slot);
    expect(slot.context).toBe(first);

    // collected, then a cut: the slot lets go of its span and serves the next request
    await collectGarbage();
    pool.samplesResolved();
    expect(slot.context).toBeUndefined();
    const next = spanContext('3333333333333333');
    const seen = new Set<SpanSlot>();
    for (let i = 0; i < 3; i++) {
      pool.run(p, i === 0 ? next : spanContext(`44444444444444${i}${i}`), () => undefined);
      seen.add(lastSlot(p));
    }
    expect(seen.has(slot)).toBe(true);
    expect(c.reused).toBeGreaterThanOrEqual(1);
  });

  test('a request with work still pending (a timer after its reply) keeps its slot through GCs and cuts', async () => {
    const p = new RecordingPropagator();
    const pool = new SpanContextPool(counters());
    const busy = spanContext('5555555555555555');
    let fired = false;
    const timer = pool.run(p, busy, () => setTimeout(() => (fired = true), 60_000));
    const slot = lastSlot(p);
    for (let round = 0; round < 3; round++) {
      await collectGarbage();
      pool.samplesResolved();
      pool.run(p, spanContext(`66666666666666${round}${round}`), () => undefined);
      expect(lastSlot(p)).not.toBe(slot);
    }
    // what the timer's samples would resolve to has not moved
    expect(slot.context).toBe(busy);
    clearTimeout(timer);
    expect(fired).toBe(false);
  });

  test('at the bound, a request gets a fresh context of its own (counted), never a busy slot', () => {
    const p = new RecordingPropagator();
    const c = counters();
    const pool = new SpanContextPool(c, 2);
    const contexts = ['7777777777777771', '7777777777777772', '7777777777777773'].map(spanContext);
    for (const context of contexts) pool.run(p, context, () => undefined);
    expect(c).toEqual({ slots: 2, reused: 0, unpooled: 1 });
    const third = p.entered[2];
    expect(third.context).toBe(contexts[2]);
    expect(third.reused).toBe(false);
  });

  test('the request runs inside the slot: what fn returns comes back, and its throw goes to the caller', () => {
    const p = new RecordingPropagator();
    const pool = new SpanContextPool(counters());
    expect(pool.run(p, spanContext('8888888888888888'), () => 42)).toBe(42);
    expect(() =>
      pool.run(p, spanContext('9999999999999999'), () => {
        throw new Error('from the handler');
      }),
    ).toThrow('from the handler');
  });
});
