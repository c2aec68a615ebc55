/**
 * The contracts between the pieces of the pipeline:
 *
 *   profilers (what samples)  ->  EncodedProfile  ->  exporters (where profiles go)
 *
 * Kept free of runtime code so every module can import it without cycles.
 */

/** What the plugin can collect. `cpu` and `wall` come from the same V8 time profiler. */
export type ProfileKind = 'cpu' | 'wall' | 'heap';

/** A flat set of string labels, as Pyroscope turns them into series labels. */
export type Labels = Readonly<Record<string, string>>;

/**
 * One profile of one window, serialized (gzipped pprof protobuf) and ready to ship.
 * Produced once per window and kind; every exporter gets the same object.
 */
export interface EncodedProfile {
  kind: ProfileKind;
  /** gzipped pprof bytes */
  body: Buffer;
  /** window start and end, unix milliseconds */
  startMs: number;
  endMs: number;
  /** number of samples after merging (for stats and the ingest limits) */
  sampleCount: number;
}

/** Where profiles go. `export` must never throw synchronously nor reject: failures are counted. */
export interface Exporter {
  readonly name: string;
  /** Hand over one window's profiles. Resolves when this exporter is done with them (or gave up). */
  export(profiles: readonly EncodedProfile[]): Promise<void>;
  /** Try to deliver what is pending, for at most `timeoutMs`, then release every resource. */
  close(timeoutMs: number): Promise<void>;
  stats(): ExporterStats;
}

export interface ExporterStats {
  uploadsOk: number;
  uploadsFailed: number;
  bytesSent: number;
  /** profiles given up on (queue full, retries exhausted, rejected by the server, close deadline) */
  dropped: number;
  /** profiles waiting for a retry or for their turn */
  pending: number;
  lastError?: string;
}

/** The subset of a pino/Fastify logger the plugin uses. */
export interface MinimalLogger {
  info(obj: unknown, msg?: string): void;
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
  debug(obj: unknown, msg?: string): void;
}
