/**
 * What the main thread and participating worker threads say to each other, over one
 * BroadcastChannel per process. A BroadcastChannel reaches every thread of the process that opens
 * the same name, so neither piscina nor the user has to wire a port into each worker; both ends
 * unref it, so it never keeps a thread alive.
 *
 *   worker -> main   join (profileWorker() ran)         main -> workers  hello (a relay opened)
 *   main -> workers  start {session, refused ids}       worker -> main   failed (engine refused)
 *   main -> workers  cut {session, cut}                 worker -> main   piece {session, cut, pprof}
 *   main -> workers  stop {session, cut}                worker -> main   piece (last) / leave (exit)
 *   main -> workers  heap-start {holder, settings}      worker -> main   heap {ask, snapshot} (or unasked)
 *   main -> workers  heap-ask {ask}                     main -> workers  heap-stop {holder}
 *
 * A worker reads the channel when its event loop turns and, synchronously, when a task starts
 * (receiveMessageOnPort): an idle piscina worker blocks in Atomics.wait and runs no event loop.
 *
 * Profiles travel as pprof protobuf bytes (pprof-format's encode, not gzipped): a structured clone
 * of a pprof-format Profile would lose its classes, and the main thread merges them anyway.
 */

export const CHANNEL_NAME = 'fastify-continuous-profiling:workers';

/** Protocol version: a worker and a main thread from different copies of the package refuse each other. */
export const PROTOCOL_VERSION = 2;

/** The `cut` of a piece a worker hands over unasked, at the end of a task (see worker.ts). */
export const UNASKED_CUT = 0;

/** What a participating worker's engine runs with: the main thread's settings. */
export interface WorkerEngineSettings {
  sampleRate: number;
  /** record CPU time per sample (the main thread always does: both views from one engine) */
  collectCpuTime: boolean;
  /** the engine's window bound (uploadRate) */
  windowMs: number;
  maxLabelValues: number;
  maxLabelsPerSample: number;
  /** keep frame columns (source maps are applied on the main thread, to the merged profile) */
  frameColumns: boolean;
}

/** What a participating worker's heap sampler runs with: the main thread's settings. */
export interface WorkerHeapSettings {
  /** bytes between two sampled allocations (heapSamplingInterval) */
  intervalBytes: number;
  /** the window (uploadRate): a task ending with a snapshot a quarter of it old sends a new one */
  windowMs: number;
  frameColumns: boolean;
}

export type MainMessage =
  | { v: typeof PROTOCOL_VERSION; kind: 'hello' }
  | { v: typeof PROTOCOL_VERSION; kind: 'start'; session: number; refused: number[]; settings: WorkerEngineSettings }
  | { v: typeof PROTOCOL_VERSION; kind: 'cut'; session: number; cut: number }
  | { v: typeof PROTOCOL_VERSION; kind: 'stop'; session: number; cut: number }
  /** `holder`: the relay that holds the workers' heap samplers (two apps of one process each hold them) */
  | { v: typeof PROTOCOL_VERSION; kind: 'heap-start'; holder: number; refused: number[]; settings: WorkerHeapSettings }
  | { v: typeof PROTOCOL_VERSION; kind: 'heap-stop'; holder: number }
  | { v: typeof PROTOCOL_VERSION; kind: 'heap-ask'; ask: number };

export type WorkerMessage =
  | { v: typeof PROTOCOL_VERSION; kind: 'join'; threadId: number; name: string }
  | { v: typeof PROTOCOL_VERSION; kind: 'failed'; threadId: number; session: number; error: string }
  | {
      v: typeof PROTOCOL_VERSION;
      kind: 'piece' | 'leave';
      threadId: number;
      session: number;
      /** the cut this answers (leave: the last cut the worker saw; UNASKED_CUT: none) */
      cut: number;
      /** pprof protobuf bytes; absent when nothing was sampled since the previous cut */
      profile?: Uint8Array;
      /** task label entries refused (name or value) since the previous piece */
      labelsDropped: number;
    }
  | {
      v: typeof PROTOCOL_VERSION;
      kind: 'heap';
      threadId: number;
      /** the heap-ask this answers; UNASKED_CUT: sent at a task's end */
      ask: number;
      /** pprof protobuf bytes of what is live in the worker, `thread` on every sample; absent when its sampler is off */
      profile?: Uint8Array;
      /** the sampler could not start or read */
      error?: string;
    };

/** The message as one of ours, or undefined (another version, another sender on the channel). */
export function asMainMessage(data: unknown): MainMessage | undefined {
  return isOurs(data) && ['hello', 'start', 'cut', 'stop', 'heap-start', 'heap-stop', 'heap-ask'].includes(String((data as { kind: unknown }).kind)) ? (data as MainMessage) : undefined;
}

export function asWorkerMessage(data: unknown): WorkerMessage | undefined {
  return isOurs(data) && ['join', 'failed', 'piece', 'leave', 'heap'].includes(String((data as { kind: unknown }).kind)) ? (data as WorkerMessage) : undefined;
}

function isOurs(data: unknown): boolean {
  return typeof data === 'object' && data !== null && (data as { v?: unknown }).v === PROTOCOL_VERSION;
}
