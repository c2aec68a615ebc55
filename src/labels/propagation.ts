/**
 * How the profiler learns which label set the running code belongs to.
 *
 * The time profiler attaches to each sample the "current context" at the moment of the signal.
 * Two ways to keep that context right across `await` (see shared notes, profiling-engine.md):
 *
 * - `cped`: the engine stores the context in Node's AsyncContextFrame, which Node itself carries
 *   through promises and callbacks. Exact, no per-callback cost. Needs AsyncContextFrame.
 * - `async-hooks`: our AsyncLocalStorage carries the label set; an async hook `before` callback
 *   points the engine's single context slot at the store of each callback about to run
 *   (through a LabelHolder, see AsyncHookPropagator).
 */
import { AsyncLocalStorage, createHook, type AsyncHook } from 'node:async_hooks';
import { time } from '@datadog/pprof';
import type { Labels } from '../types';
import type { SpanSampleContext } from './spans';

/** What a sample's context stands for: a route/withLabels label set, or one plus a request's root span. */
export type SampleContext = Labels | SpanSampleContext;

export type LabelMode = 'cped' | 'async-hooks';

export interface LabelPropagator {
  readonly mode: LabelMode;
  /** Start following contexts (right after the time profiler started). */
  enable(): void;
  /** Stop touching the engine (right before the time profiler stops). */
  disable(): void;
  /**
   * Runs `fn` with `labels` current for it and everything it schedules; the outer labels after.
   * `reused`: this very label set object comes back again and again (route label sets), so the
   * propagator may keep per-set state for it (CPED mode keeps the engine's holder).
   */
  run<T>(labels: SampleContext, fn: () => T, reused?: boolean): T;
  /** The sample context of the running code, undefined outside any labelled work. */
  current(): SampleContext | undefined;
  /** Times the engine refused a context (the propagator then turns itself off). */
  readonly engineErrors: number;
}

/** The part of @datadog/pprof's `time` the propagators use (an interface so tests can watch it). */
export type ContextEngine = Pick<typeof time, 'setContext' | 'getContext' | 'runWithContext' | 'isStarted' | 'getState'>;

/**
 * Whether AsyncContextFrame really backs AsyncLocalStorage in this process, asked of the engine
 * itself: it checks that a probe store shows up in the very slot the profiler reads. The Node
 * version cannot tell (Node 22 needs a flag, Node 24 can be started with the feature off, and
 * `useCPED` without it silently loses every label). If the engine cannot answer (a future layout
 * of the package), the answer is no: the async-hook mode is correct everywhere.
 */
export function asyncContextFrameActive(): boolean {
  try {
    // Not re-exported from the package index (present in 5.20); a missing module means "no".
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const probe = require('@datadog/pprof/out/src/async-context-frame') as {
      isAsyncContextFrameActive?: () => boolean;
    };
    return typeof probe.isAsyncContextFrameActive === 'function' && probe.isAsyncContextFrameActive() === true;
  } catch {
    return false;
  }
}

/**
 * CPED mode: the engine's own AsyncContextFrame storage carries the labels.
 *
 * `time.runWithContext(labels, fn)` enters the engine's AsyncLocalStorage with a holder object it
 * creates for `labels` on every call: a native object wrapping a new persistent handle, with a
 * weak callback the garbage collector must run later. Per request on Node 24 that cost +15 % of a
 * hello-world request's CPU over entering a plain AsyncLocalStorage (bench/RESULTS.md, session 3).
 * Route label sets are few and reused, so their holders are kept, and requests enter the engine's
 * store with the kept holder directly: the samples see exactly what runWithContext would have
 * given them (the store and the holder are the engine's own).
 *
 * The engine does not expose its store: enable() catches it as the engine enters it for a probe,
 * then checks that entering it with a kept holder makes the engine report those labels. If
 * anything differs (another engine version), every call goes through runWithContext as before.
 * Holders belong to the running profiler (freed with it), so they are dropped at disable(),
 * before the engine stops, and the store is caught anew at each session.
 */
export class CpedPropagator implements LabelPropagator {
  readonly mode = 'cped' as const;
  engineErrors = 0;
  private enabled = false;
  /** the engine's AsyncLocalStorage for this session, when caught and checked */
  private engineStore: AsyncLocalStorage<object> | undefined;
  /** engine holders of reused label sets, for this session only */
  private holders = new WeakMap<SampleContext, object>();

  constructor(private readonly engine: ContextEngine = time) {}

  enable(): void {
    // time.start({ useCPED: true }) created the storage. Probe it once: a profiler started
    // without useCPED makes runWithContext throw, and that must not happen inside a request.
    try {
      this.engineStore = catchEngineStore(this.engine);
      this.enabled = true;
    } catch {
      this.engineErrors++;
      this.enabled = false;
    }
  }

  disable(): void {
    this.enabled = false;
    this.engineStore = undefined;
    this.holders = new WeakMap();
  }

  run<T>(labels: SampleContext, fn: () => T, reused = false): T {
    // A stopped engine throws from runWithContext; never let that reach a request.
    if (!this.enabled || !this.engine.isStarted()) return fn();
    const store = this.engineStore;
    if (store === undefined || !reused) return this.engine.runWithContext(labels, fn);
    let holder = this.holders.get(labels);
    if (holder === undefined) {
      holder = this.engine.runWithContext(labels, readStore, store);
      if (holder === undefined) return this.engine.runWithContext(labels, fn);
      this.holders.set(labels, holder);
    }
    return store.run(holder, fn);
  }

  current(): SampleContext | undefined {
    if (!this.enabled || !this.engine.isStarted()) return undefined;
    return this.engine.getContext() as SampleContext | undefined;
  }
}

function readStore(store: AsyncLocalStorage<object>): object | undefined {
  return store.getStore();
}

/**
 * The AsyncLocalStorage the engine enters in runWithContext, caught with a probe call (which also
 * throws if the engine cannot run contexts at all), or undefined when it cannot be caught and
 * checked. AsyncLocalStorage.prototype.run is wrapped for the probe call only, synchronously:
 * nothing else can run in between, and the original is put back before this returns.
 */
function catchEngineStore(engine: ContextEngine): AsyncLocalStorage<object> | undefined {
  const proto = AsyncLocalStorage.prototype;
  const original = Object.getOwnPropertyDescriptor(proto, 'run');
  const originalRun = original?.value as ((...args: unknown[]) => unknown) | undefined;
  let caught: AsyncLocalStorage<object> | undefined;
  const canWrap = original !== undefined && typeof originalRun === 'function' && original.configurable === true;
  if (canWrap) {
    Object.defineProperty(proto, 'run', {
      ...original,
      value: function run(this: AsyncLocalStorage<object>, ...args: unknown[]) {
        caught ??= this;
        return originalRun.apply(this, args);
      },
    });
  }
  try {
    engine.runWithContext(PROBE_LABELS, noop);
  } finally {
    if (canWrap) Object.defineProperty(proto, 'run', original);
  }
  if (caught === undefined) return undefined;
  // The check: a holder made by the engine, entered through the caught store, must be what the
  // engine reports as the current context. Otherwise the store is not the one the samples read.
  const store = caught;
  const check: Labels = Object.freeze({});
  const holder = engine.runWithContext(check, readStore, store);
  if (typeof holder !== 'object' || holder === null) return undefined;
  return store.run(holder, () => engine.getContext()) === check ? store : undefined;
}

const PROBE_LABELS: Labels = Object.freeze({});
const noop = (): void => undefined;

/**
 * What the engine's context slot holds in async-hook mode: the label set of the running code,
 * rewritten in place until a sample has taken the holder (see AsyncHookPropagator).
 */
export class LabelHolder {
  constructor(public labels: SampleContext | undefined) {}
}

/** The label set a sample's context stands for: holders are unwrapped, label sets returned as they are. */
export function labelsOfContext(context: unknown): unknown {
  return context instanceof LabelHolder ? context.labels : context;
}

const { kSampleCount } = time.constants as { kSampleCount: number };

/**
 * Async-hook mode, for Node without AsyncContextFrame (20, 22 without the flag).
 *
 * Our AsyncLocalStorage carries the (frozen, shared) label set of each request; an async hook
 * `before` callback makes the engine's single context slot follow the store of every callback,
 * timer, tick and promise reaction about to run. The slot holds a LabelHolder:
 * - if no sample was taken since the holder was handed to the engine (the engine's sample count
 *   has not moved), the holder is rewritten in place: a property write, no engine call;
 * - otherwise a sample owns the holder and must keep what it saw, so a new holder is handed over
 *   with `time.setContext`.
 * The one sample that can see a rewrite after it was taken is one taken inside point() itself,
 * between reading the count and writing the holder: it is the label switch for the callback
 * about to run, and it gets that callback's labels. No user code runs in that gap, so user code
 * is never mislabelled.
 *
 * Measured against the simpler "setContext whenever the store changes" (exact as well, since
 * label sets are immutable): 50 concurrent requests with 6 awaits each, profiler at 100 Hz,
 * best of 7-9 rounds, 5 runs on a shared 2-core machine (test/fixtures/labels-hook-microbench.js):
 * the holder adds +0.6 to +1.6 us per request, setContext-on-change +1.4 to +4.4 us (Node 20 and
 * 24 alike). Under concurrency nearly every callback switches store, and a property write is
 * cheaper than a native call that allocates a handle.
 * The bulk of this mode's cost is the hook itself (promise hooks on every reaction): about
 * +8 to +17 us per trivial HTTP request on Node 20 (test/fixtures/labels-hook-cost.js).
 */
export class AsyncHookPropagator implements LabelPropagator {
  readonly mode = 'async-hooks' as const;
  engineErrors = 0;

  private readonly store = new AsyncLocalStorage<SampleContext>();
  private readonly hook: AsyncHook;
  private holder = new LabelHolder(undefined);
  /** the engine's sample count when `holder` was handed over */
  private holderSampleCount = -1;
  /** the engine's shared state array (sample count), read without a native call */
  private engineState: Uint32Array | undefined;
  private enabled = false;

  constructor(private readonly engine: ContextEngine = time) {
    // An async hook callback that throws kills the process: point() never throws.
    this.hook = createHook({ before: () => this.point(this.store.getStore()) });
  }

  enable(): void {
    if (this.enabled) return;
    try {
      this.engineState = this.engine.getState() as Uint32Array;
      // time.start() left `{}` in the slot: replace it with a holder for the running code.
      this.handOver(this.store.getStore());
    } catch {
      this.engineErrors++;
      return;
    }
    this.enabled = true;
    this.hook.enable();
  }

  disable(): void {
    // Hook first: after time.stop(), setContext throws.
    this.hook.disable();
    // Then the store: once run() has entered it, an AsyncLocalStorage keeps Node's promise hooks
    // on until disabled, and every later await of the process pays for them (2.5x the cost of a
    // bare await on Node 20): after a threshold session, for the life of the process. The next
    // session's first run() enables it again.
    this.store.disable();
    this.enabled = false;
    this.engineState = undefined;
  }

  run<T>(labels: SampleContext, fn: () => T): T {
    // Inside run() no `before` fires for the synchronous part, so point the slot ourselves on the
    // way in, and back at the caller's store on the way out (also when fn throws).
    return this.store.run(labels, runPointed, this, labels, this.store.getStore(), fn);
  }

  current(): SampleContext | undefined {
    return this.store.getStore();
  }

  /** Makes the engine's context slot stand for `labels`. */
  point(labels: SampleContext | undefined): void {
    if (labels === this.holder.labels || !this.enabled) return;
    const sampleCount = this.engineState![kSampleCount];
    if (sampleCount === this.holderSampleCount) {
      this.holder.labels = labels;
      return;
    }
    try {
      if (!this.engine.isStarted()) throw new Error('time profiler stopped before labels were deactivated');
      this.handOver(labels, sampleCount);
    } catch {
      // Contract broken (engine stopped while we were active): stop following rather than
      // throw from an async hook. Counted for stats().
      this.engineErrors++;
      this.disable();
    }
  }

  private handOver(labels: SampleContext | undefined, sampleCount = this.engineState![kSampleCount]): void {
    const holder = new LabelHolder(labels);
    this.engine.setContext(holder);
    this.holder = holder;
    this.holderSampleCount = sampleCount;
  }
}

/** A plain function rather than a closure, so run() allocates nothing beyond AsyncLocalStorage's own work. */
function runPointed<T>(
  propagator: AsyncHookPropagator,
  labels: SampleContext,
  outer: SampleContext | undefined,
  fn: () => T,
): T {
  propagator.point(labels);
  try {
    return fn();
  } finally {
    propagator.point(outer);
  }
}

export function createPropagator(mode: LabelMode, engine: ContextEngine = time): LabelPropagator {
  return mode === 'cped' ? new CpedPropagator(engine) : new AsyncHookPropagator(engine);
}
