/**
 * Source maps a TypeScript runner keeps in memory: scripts compiled at load time (tsx, ts-node)
 * carry no `sourceMappingURL` on disk, so SourceMaps cannot find their map there.
 *
 * How the runners expose their maps (measured with tsx 4.23 and ts-node 10.9, Node 20 and 24):
 * - tsx (`tsx app.ts`, `node --import tsx`, `node --require tsx/cjs`) compiles each file with
 *   esbuild into one line with an inline map, and turns Node's source-map support on
 *   (`process.setSourceMapsEnabled(true)`): Node keeps the map, `module.findSourceMap(file)`
 *   returns it. Unmapped, every frame reads line 1 or 2 and esbuild's renamed names
 *   (`burn2`).
 * - ts-node keeps its maps to itself (source-map-support's `Error.prepareStackTrace` hook);
 *   Node keeps them only when started with `--enable-source-maps`, and then findSourceMap
 *   returns them. Without the flag there is nothing to read: its frames keep the compiled lines
 *   (often, not always, the same as the source's), which is counted and said once.
 * - Node's own type stripping (Node 22.18+/23.6+ on .ts files) keeps every position: no map needed.
 *
 * findSourceMap only answers in the thread that loaded the module, so this runs on the main
 * thread; the payload (the map as JSON) is handed to SourceMaps, which parses it where it parses
 * the others. Node builds its SourceMap object on the first findSourceMap of a file (decoding the
 * mappings on this thread, once per file), so at most MAX_LOOKUPS_PER_CALL new scripts are
 * looked at per window; the rest wait for the next one.
 */
import { findSourceMap } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { MinimalLogger } from '../types';

const MAX_LOOKUPS_PER_CALL = 32;
/** Scripts remembered, at most (then forgotten all at once and looked at again). */
const MAX_REMEMBERED = 20_000;
const TYPESCRIPT_FILE = /\.(?:[cm]?ts|tsx)$/;
const TS_NODE_INSTANCE = Symbol.for('ts-node.register.instance');

/** A map Node holds for a script: its JSON payload (what a `.map` file would hold). */
export type RuntimeMapPayload = Record<string, unknown>;

export class RuntimeSourceMaps {
  /** script -> its payload, or null: none */
  private readonly known = new Map<string, RuntimeMapPayload | null>();
  private unmapped = 0;

  constructor(private readonly logger: MinimalLogger) {}

  /** Scripts a TypeScript runner compiled whose map could not be had (counted as sourceMapErrors). */
  get unmappedScripts(): number {
    return this.unmapped;
  }

  /**
   * The runtime's maps of `scripts` (scripts without an on-disk annotation), looking at no more
   * than MAX_LOOKUPS_PER_CALL new ones; `pending` says which were left for a later call.
   */
  find(scripts: Iterable<string>): { maps: Map<string, RuntimeMapPayload>; pending: Set<string> } {
    const maps = new Map<string, RuntimeMapPayload>();
    const pending = new Set<string>();
    let looked = 0;
    for (const script of scripts) {
      let payload = this.known.get(script);
      if (payload === undefined) {
        if (looked >= MAX_LOOKUPS_PER_CALL) {
          pending.add(script);
          continue;
        }
        looked++;
        payload = this.lookUp(script);
      }
      if (payload !== null) maps.set(script, payload);
    }
    return { maps, pending };
  }

  private lookUp(script: string): RuntimeMapPayload | null {
    const payload = nodeSourceMap(script) ?? null;
    if (this.known.size >= MAX_REMEMBERED) this.known.clear();
    this.known.set(script, payload);
    if (payload === null && TYPESCRIPT_FILE.test(script) && tsNodeActive()) this.report(script);
    return payload;
  }

  /** Counted per script, said once per process (the fix is one flag for all of them). */
  private report(script: string): void {
    if (this.unmapped++ > 0) return;
    this.logger.warn(
      { script: path.basename(script) },
      `continuous profiling: frames of ${path.basename(script)} stay at ts-node's compiled lines: ts-node keeps its source maps to itself; ` +
        'start Node with --enable-source-maps (e.g. NODE_OPTIONS=--enable-source-maps) so Node keeps them and profiles read the .ts lines',
    );
  }
}

/** The map Node keeps for a script (CommonJS modules are keyed by path, ES modules by file URL). */
function nodeSourceMap(script: string): RuntimeMapPayload | undefined {
  try {
    const map = findSourceMap(script) ?? findSourceMap(pathToFileURL(script).href);
    const payload = map?.payload as RuntimeMapPayload | undefined;
    return payload !== undefined && typeof payload === 'object' ? payload : undefined;
  } catch {
    return undefined; // a map Node could not parse: the same as none
  }
}

function tsNodeActive(): boolean {
  return TS_NODE_INSTANCE in process;
}
