/**
 * `app.profiler.capture({ type, seconds })`: one profile over the next `seconds`, as a gzipped
 * pprof Buffer, read from the shared engine (src/profilers/shared-engine.ts) so that it never
 * fights the push session for V8's one time profiler. The /debug/pprof endpoints are built on it.
 *
 * - cpu / wall: joins the time engine for `seconds` (starting it only when nobody samples) and
 *   gets exactly the samples of its interval, route labels kept; sample types as in push
 *   profiles (`samples` + `cpu`, or `samples` + `wall`).
 * - heap: the sampled in-use heap (`inuse_objects`, `inuse_space`) at the end of the capture.
 *   While the heap sampler runs (always while pprofEndpoints is on, as Go's runtime always
 *   samples; or during a push session with heap), a capture without `seconds` is a snapshot
 *   now. Otherwise the sampler is started for `seconds` (default 30), so only what was
 *   allocated in that time and is still live shows. Not a delta profile (Go's /heap?seconds is).
 * - Concurrent captures share the engine, each with its own interval; at most
 *   MAX_CONCURRENT_CAPTURES run at once, beyond that a 429 error with a retry delay.
 * - close() ends every running capture at once; each resolves with what it collected.
 */
import { Profile, StringTable, ValueType } from 'pprof-format';
import { encodeProfile, type SharedEngine, type WindowProfile } from '../profilers';
import type { FrameRewriter } from '../profilers/frames';
import type { MinimalLogger } from '../types';
import { PPROF_DEFAULTS } from './options';

export type CaptureType = 'cpu' | 'wall' | 'heap';

export interface CaptureOptions {
  type: CaptureType;
  /** whole seconds, 1..maxSeconds; default 30 (heap: see the module comment) */
  seconds?: number;
}

export interface CaptureStats {
  /** captures started (endpoints and capture()) */
  captures: number;
  capturesRunning: number;
  /** refused before starting: bad arguments, too many at once, closing */
  capturesRefused: number;
  /** started but failed: the engine could not start, the profile could not be collected */
  capturesFailed: number;
}

/** Captures running at once; each holds a request open and its samples in memory. */
export const MAX_CONCURRENT_CAPTURES = 4;

/** A capture that cannot be done; `status` is the HTTP status the endpoints answer with. */
export class ProfileCaptureError extends Error {
  readonly code = 'FST_CONTINUOUS_PROFILING_CAPTURE';
  override readonly name = 'ProfileCaptureError';

  constructor(
    message: string,
    readonly status: 400 | 429 | 500 | 503,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export interface CapturesDeps {
  engine: SharedEngine;
  maxSeconds: number;
  sampleRate: number;
  logger: MinimalLogger;
  frames?: FrameRewriter;
}

interface Running {
  endsAt: number;
  /** ends the wait now (close) */
  finish: () => void;
  settled: Promise<unknown>;
}

export class Captures {
  private readonly running = new Set<Running>();
  private closed = false;
  private readonly counters = { captures: 0, refused: 0, failed: 0 };

  constructor(private readonly deps: CapturesDeps) {}

  get maxSeconds(): number {
    return this.deps.maxSeconds;
  }

  stats(): CaptureStats {
    return { captures: this.counters.captures, capturesRunning: this.running.size, capturesRefused: this.counters.refused, capturesFailed: this.counters.failed };
  }

  /** Never throws synchronously: every problem is a rejection with a ProfileCaptureError. */
  capture(options: CaptureOptions): Promise<Buffer> {
    let checked: { type: CaptureType; seconds: number | undefined };
    try {
      checked = this.check(options);
    } catch (error) {
      this.counters.refused++;
      return Promise.reject(error);
    }
    const { type, seconds } = checked;
    const heapNow = type === 'heap' && seconds === undefined && this.deps.engine.heap.running;
    if (heapNow) return this.track(this.heapCapture(undefined));
    const length = seconds ?? PPROF_DEFAULTS.seconds;
    return this.track(type === 'heap' ? this.heapCapture(length) : this.timeCapture(type, length));
  }

  /** Ends every running capture now (they resolve with what they collected); waits at most `timeoutMs`. */
  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    const all = [...this.running];
    for (const r of all) r.finish();
    await raceTimeout(Promise.allSettled(all.map((r) => r.settled)), timeoutMs);
  }

  private check(options: CaptureOptions): { type: CaptureType; seconds: number | undefined } {
    if (this.closed) throw new ProfileCaptureError('the profiler is closing', 503);
    if (options === null || typeof options !== 'object') throw new ProfileCaptureError('capture options must be an object { type, seconds? }', 400);
    const { type, seconds } = options;
    if (type !== 'cpu' && type !== 'wall' && type !== 'heap') {
      throw new ProfileCaptureError(`type must be "cpu", "wall" or "heap" (got ${JSON.stringify(String(type)).slice(0, 40)})`, 400);
    }
    if (seconds !== undefined && (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 1 || seconds > this.deps.maxSeconds)) {
      throw new ProfileCaptureError(`seconds must be a whole number from 1 to ${this.deps.maxSeconds} (got ${String(seconds).slice(0, 20)})`, 400);
    }
    if (this.running.size >= MAX_CONCURRENT_CAPTURES) {
      const soonest = Math.min(...[...this.running].map((r) => r.endsAt));
      const retryAfter = Math.max(1, Math.ceil((soonest - Date.now()) / 1000));
      throw new ProfileCaptureError(`${MAX_CONCURRENT_CAPTURES} captures are running; retry in ${retryAfter} s`, 429, retryAfter);
    }
    return { type, seconds };
  }

  private track(work: Promise<Buffer>): Promise<Buffer> {
    this.counters.captures++;
    work.catch(() => {
      this.counters.failed++;
    });
    return work;
  }

  /**
   * Registers a running capture: `done` resolves after `seconds`, or at once when close() ends
   * it; `release()` (once its profile is made, or it failed) unregisters it.
   */
  private begin(seconds: number): { done: Promise<void>; release: () => void } {
    let finish!: () => void;
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    let markSettled!: () => void;
    const settled = new Promise<void>((resolve) => {
      markSettled = resolve;
    });
    // Not unref'd: a caller awaiting capture() in a script must get its profile, not a process
    // exit; the wait is bounded by maxSeconds and close() ends it.
    const timer = setTimeout(finish, seconds * 1000);
    const running: Running = {
      endsAt: Date.now() + seconds * 1000,
      finish: () => {
        clearTimeout(timer);
        finish();
      },
      settled,
    };
    this.running.add(running);
    return {
      done,
      release: () => {
        clearTimeout(timer);
        this.running.delete(running);
        markSettled();
      },
    };
  }

  private async timeCapture(type: 'cpu' | 'wall', seconds: number): Promise<Buffer> {
    const { engine } = this.deps;
    const startedAt = Date.now();
    const share = this.engineCall(() => engine.joinTime(), 'the profiler could not start', 503);
    const { done, release } = this.begin(seconds);
    try {
      await done;
      const pieces = this.engineCall(() => engine.leaveTime(share), 'the profile could not be collected', 500);
      const endedAt = Date.now();
      const merged = engine.mergeWindow(pieces, await engine.threadPieces(share));
      const view = merged === undefined ? undefined : engine.views(merged, { cpu: type === 'cpu', wall: type === 'wall' })[0];
      const profile = view?.profile ?? emptyTimeProfile(type, this.deps.sampleRate);
      return await encodeProfile(profile, startedAt, endedAt - startedAt, this.deps.frames);
    } finally {
      release();
    }
  }

  private async heapCapture(seconds: number | undefined): Promise<Buffer> {
    const { engine } = this.deps;
    if (seconds === undefined) return encodeHeap(await engine.heap.snapshotAll(), Date.now(), 0, this.deps.frames);
    const startedAt = Date.now();
    this.engineCall(() => engine.heap.acquire(), 'the heap sampler could not start', 503);
    const { done, release } = this.begin(seconds);
    try {
      await done;
      return await encodeHeap(await engine.heap.snapshotAll(), startedAt, Date.now() - startedAt, this.deps.frames);
    } finally {
      engine.heap.release();
      release();
    }
  }

  /** `call` on the engine; its failure is logged and becomes a ProfileCaptureError(`failure`, `status`). */
  private engineCall<T>(call: () => T, failure: string, status: ProfileCaptureError['status']): T {
    try {
      return call();
    } catch (error) {
      this.deps.logger.error({ err: error instanceof Error ? error.message : String(error) }, `continuous profiling: ${failure}`);
      throw new ProfileCaptureError(failure, status);
    }
  }
}

async function encodeHeap(snapshot: WindowProfile | undefined, startedAt: number, durationMs: number, frames: FrameRewriter | undefined): Promise<Buffer> {
  const profile = snapshot?.profile ?? emptyProfile([['inuse_objects', 'count'], ['inuse_space', 'bytes']], ['space', 'bytes'], 0);
  return encodeProfile(profile, startedAt, durationMs, frames);
}

/** No sample in the interval: still a valid profile of the asked type (pprof shows it empty). */
function emptyTimeProfile(type: 'cpu' | 'wall', sampleRate: number): Profile {
  return emptyProfile([['samples', 'count'], [type, 'nanoseconds']], [type, 'nanoseconds'], Math.round(1e9 / sampleRate));
}

function emptyProfile(types: Array<[string, string]>, period: [string, string], periodValue: number): Profile {
  const strings = new StringTable();
  const valueType = ([type, unit]: [string, string]): ValueType => new ValueType({ type: strings.dedup(type), unit: strings.dedup(unit) });
  return new Profile({ sampleType: types.map(valueType), periodType: valueType(period), period: periodValue, stringTable: strings });
}

function raceTimeout(work: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    void work.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
