/**
 * Source maps on a worker thread: decoding a 5 MB bundle map's mappings blocks for 40-145 ms
 * (measured, bench/source-map-cost.js), far past the 10 ms flush-block target, so maps are read,
 * parsed and cached by SourceMaps on a worker (src/profilers/source-map-worker.ts) and the
 * event loop only sends the frames of a window and reads the answers.
 *
 * - The worker starts the first time a window has a frame of a script that declares a map (its
 *   last line is read here first, mayDeclareSourceMap: the thread costs 15-19 MB of peak RSS on
 *   Node 24, which a service without maps never pays), is unref'd (it never keeps the process
 *   alive) and ends at close(). Its heap is capped (resourceLimits): a map that would
 *   exhaust it ends the worker, not the process.
 * - Answers are remembered here (same function, same answer), so a steady window sends nothing.
 * - A window waits at most LOOKUP_TIMEOUT_MS for its answer (a first big map): past it, its
 *   frames go as compiled and the next window gets the mapped ones.
 * - A worker that fails (or cannot start) is counted in sourceMapErrors, logged, and frames go as
 *   compiled; one attempt to start a new worker is made per minute, and the scripts it was
 *   working on when it died are not asked about again (their map may be what killed it).
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { LogLimiter } from '../log-limiter';
import type { MinimalLogger } from '../types';
import { RuntimeSourceMaps, type RuntimeMapPayload } from './runtime-maps';
import { mappable, mayDeclareSourceMap, type FrameQuery, type FrameSymbolizer, type LookupOutcome, type OriginalFrame, type SourceMapStats } from './source-maps';
import type { LookupRequest, WorkerMessage } from './source-map-worker';

const WORKER_FILE = path.join(__dirname, 'source-map-worker.js');
export const LOOKUP_TIMEOUT_MS = 5_000;
/** The worker's old-generation heap: room for the 160 MB cache and a 20 MB map being parsed. */
const WORKER_HEAP_MB = 384;
const RETRY_AFTER_FAILURE_MS = 60_000;
/** Answers remembered on this side, at most (then forgotten all at once and asked again). */
const MAX_REMEMBERED_ANSWERS = 100_000;
/** Scripts whose last line is read at the same time, at most. */
const LOOKUP_CONCURRENCY = 4;

export interface SourceMapWorkerOptions {
  logger: MinimalLogger;
  maxCacheBytes?: number;
  maxMapBytes?: number;
  /** tests: the worker script (default: the compiled one next to this file) and its heap cap */
  workerFile?: string;
  workerHeapMb?: number;
}

/** The worker thread, unref'd (it never keeps the process alive), with its heap capped. */
function startWorkerThread(options: SourceMapWorkerOptions): Worker {
  const worker = new Worker(options.workerFile ?? WORKER_FILE, {
    workerData: { maxCacheBytes: options.maxCacheBytes, maxMapBytes: options.maxMapBytes },
    resourceLimits: { maxOldGenerationSizeMb: options.workerHeapMb ?? WORKER_HEAP_MB },
    stdout: false,
    stderr: false,
  });
  worker.unref();
  return worker;
}

export class SourceMapWorker implements FrameSymbolizer {
  private worker?: Worker;
  private nextId = 1;
  private readonly waiting = new Map<number, (message: Extract<WorkerMessage, { kind: 'answer' }> | undefined) => void>();
  private readonly answers = new Map<string, OriginalFrame | null>();
  private readonly declarations = new MapDeclarations();
  /** maps TypeScript runners keep in memory, for scripts that declare none on disk */
  private readonly runtime: RuntimeSourceMaps;
  /** scripts asked about when a worker died: never asked again (their map may be what killed it) */
  private readonly suspects = new Set<string>();
  /** request id -> its scripts, until the worker answers it (even past the timeout) */
  private readonly inFlight = new Map<number, Set<string>>();
  private workerStats: SourceMapStats = { sourceMapErrors: 0, sourceMapsCached: 0, sourceMapCacheBytes: 0 };
  private workerFailures = 0;
  private failedAt?: number;
  private closed = false;
  private readonly logLimiter = new LogLimiter();

  constructor(private readonly options: SourceMapWorkerOptions) {
    this.runtime = new RuntimeSourceMaps(options.logger);
  }

  /** False when the worker's script is not there (the plugin runs from its TypeScript sources). */
  static available(): boolean {
    return existsSync(WORKER_FILE);
  }

  stats(): SourceMapStats {
    const errors = this.workerStats.sourceMapErrors + this.workerFailures + this.runtime.unmappedScripts;
    return { ...this.workerStats, sourceMapErrors: errors };
  }

  async lookupAll(queries: readonly FrameQuery[], outcome?: LookupOutcome): Promise<(OriginalFrame | undefined)[]> {
    const results: (OriginalFrame | undefined)[] = new Array(queries.length);
    const ask: FrameQuery[] = [];
    const askedAt: number[] = [];
    await this.declarations.lookAt(queries.map((q) => q.script));
    // scripts without an annotation: the map a TypeScript runner keeps in memory, if any
    const runtime = this.runtime.find(new Set(queries.map((q) => q.script).filter((s) => mappable(s) && this.declarations.declaresNone(s))));
    // a runtime map not there yet: those frames go compiled this time only
    if (runtime.pending.size > 0 && outcome) outcome.complete = false;
    queries.forEach((q, i) => {
      if (!mappable(q.script) || this.suspects.has(q.script)) return;
      if (!this.declarations.declares(q.script) && !runtime.maps.has(q.script)) return;
      const known = this.answers.get(answerKey(q));
      if (known !== undefined) results[i] = known ?? undefined;
      else {
        ask.push(q);
        askedAt.push(i);
      }
    });
    if (ask.length === 0) return results;
    const provided = new Map([...runtime.maps].filter(([script]) => ask.some((q) => q.script === script)));
    const answer = await this.ask(ask, provided);
    if (answer === undefined) {
      // timed out, or no worker: these frames go as compiled this time only
      if (outcome) outcome.complete = false;
      return results;
    }
    this.workerStats = answer.stats;
    if (this.answers.size + ask.length > MAX_REMEMBERED_ANSWERS) this.answers.clear();
    answer.frames.forEach((frame, j) => {
      this.answers.set(answerKey(ask[j]), frame);
      results[askedAt[j]] = frame ?? undefined;
    });
    return results;
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    this.settleAll();
    if (worker) await worker.terminate().catch(() => undefined);
  }

  private async ask(queries: FrameQuery[], provided: Map<string, RuntimeMapPayload>): Promise<Extract<WorkerMessage, { kind: 'answer' }> | undefined> {
    let worker = this.worker;
    if (worker === undefined) {
      worker = this.ensureWorker();
      // starting a worker takes 1-6 ms of this thread (measured): not in the same block as the rest of the flush
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (worker === undefined || this.worker !== worker) return undefined;
    const id = this.nextId++;
    this.inFlight.set(id, new Set(queries.map((q) => q.script)));
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve(undefined);
      }, LOOKUP_TIMEOUT_MS);
      timer.unref();
      this.waiting.set(id, (message) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(message);
      });
      worker.postMessage({ id, queries, ...(provided.size > 0 ? { provided } : {}) } satisfies LookupRequest);
    });
  }

  private ensureWorker(): Worker | undefined {
    if (this.closed) return undefined;
    if (this.worker) return this.worker;
    if (this.failedAt !== undefined && Date.now() - this.failedAt < RETRY_AFTER_FAILURE_MS) return undefined;
    try {
      const worker = startWorkerThread(this.options);
      worker.on('message', (message: WorkerMessage) => this.onMessage(message));
      worker.on('error', (error) => this.onFailure(worker, error));
      worker.on('exit', (code) => {
        if (this.worker === worker) this.onFailure(worker, new Error(`the source-map worker exited (code ${code})`));
      });
      this.worker = worker;
      return worker;
    } catch (error) {
      this.onFailure(undefined, error);
      return undefined;
    }
  }

  private onMessage(message: WorkerMessage): void {
    if (message.kind === 'answer') {
      this.inFlight.delete(message.id);
      this.waiting.get(message.id)?.(message);
    }
    else this.options.logger.warn(message.fields, message.message);
  }

  private onFailure(worker: Worker | undefined, error: unknown): void {
    if (worker !== undefined && this.worker !== worker) return;
    this.worker = undefined;
    this.failedAt = Date.now();
    this.workerFailures++;
    for (const scripts of this.inFlight.values()) for (const script of scripts) if (this.suspects.size < MAX_REMEMBERED_ANSWERS) this.suspects.add(script);
    this.inFlight.clear();
    this.settleAll();
    void worker?.terminate().catch(() => undefined);
    if (this.closed) return;
    const suppressed = this.logLimiter.admit('source_map_worker');
    if (suppressed === undefined) return;
    const reason = error instanceof Error ? error.message : String(error);
    this.options.logger.warn(suppressed > 0 ? { reason, suppressed } : { reason }, `continuous profiling: source maps are off for a minute, frames stay as compiled: ${reason}`);
  }

  /** Every window waiting for an answer goes on with compiled frames. */
  private settleAll(): void {
    for (const settle of [...this.waiting.values()]) settle(undefined);
  }
}

/** Which scripts may declare a source map (mayDeclareSourceMap: their last line), looked at once per script. */
class MapDeclarations {
  private readonly known = new Map<string, boolean>();

  declares(script: string): boolean {
    return this.known.get(script) === true;
  }

  /** Looked at, and its last line declares no map. */
  declaresNone(script: string): boolean {
    return this.known.get(script) === false;
  }

  /** Reads the last line of the scripts not looked at yet (LOOKUP_CONCURRENCY at a time). */
  async lookAt(scripts: readonly string[]): Promise<void> {
    const unknown = [...new Set(scripts)].filter((s) => mappable(s) && !this.known.has(s));
    if (unknown.length === 0) return;
    if (this.known.size + unknown.length > MAX_REMEMBERED_ANSWERS) this.known.clear(); // bounded; looked at again
    let next = 0;
    const reader = async (): Promise<void> => {
      while (next < unknown.length) {
        const script = unknown[next++];
        this.known.set(script, await mayDeclareSourceMap(script));
      }
    };
    await Promise.all(Array.from({ length: Math.min(LOOKUP_CONCURRENCY, unknown.length) }, reader));
  }
}

function answerKey(q: FrameQuery): string {
  return `${q.script}\0${q.line}\0${q.column}\0${q.name}`;
}
