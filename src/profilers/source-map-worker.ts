/**
 * The worker thread behind SourceMapWorker: it owns the SourceMaps (reading, parsing, the cache)
 * and answers lookups, so no map is ever parsed on the application's event loop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { MinimalLogger } from '../types';
import type { RuntimeMapPayload } from './runtime-maps';
import { SourceMaps, type FrameQuery } from './source-maps';

export interface LookupRequest {
  id: number;
  queries: FrameQuery[];
  /** maps the main thread's runtime holds for scripts without an annotation (runtime-maps.ts) */
  provided?: Map<string, RuntimeMapPayload>;
}

export type WorkerMessage =
  | { kind: 'answer'; id: number; frames: ({ file: string; line: number; name?: string } | null)[]; stats: ReturnType<SourceMaps['stats']> }
  | { kind: 'warn'; fields: unknown; message: string };

if (parentPort) {
  const port = parentPort;
  const warnOnly = (kind: 'warn') => (fields: unknown, message?: string) => port.postMessage({ kind, fields, message: message ?? '' } satisfies WorkerMessage);
  const logger: MinimalLogger = { warn: warnOnly('warn'), info: () => undefined, error: warnOnly('warn'), debug: () => undefined };
  const options = (workerData ?? {}) as { maxCacheBytes?: number; maxMapBytes?: number };
  const maps = new SourceMaps({ logger, ...options });
  port.on('message', (request: LookupRequest) => {
    void maps.lookupWith(request.queries, request.provided ?? new Map()).then((frames) => {
      port.postMessage({ kind: 'answer', id: request.id, frames: frames.map((f) => f ?? null), stats: maps.stats() } satisfies WorkerMessage);
    });
  });
}
