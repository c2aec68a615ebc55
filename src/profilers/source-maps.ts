/**
 * Source maps for profile frames: a compiled position (script file, 1-based line and column of a
 * function's start, as V8 reports it) -> the original file, line and, for minified bundles, the
 * original function name from the map's `names`.
 *
 * Maps are found lazily, per script file, the first time a frame of that script needs one, and
 * read with fs.promises: the `//# sourceMappingURL=` annotation at the end of the script (an
 * external `.map` file or an inline `data:` map). Nothing is scanned: scripts under node_modules
 * are not looked at (third-party frames read `node_modules/<package>/<path>`; their maps often
 * name sources the package does not ship).
 *
 * Parsing: @jridgewell/trace-mapping (small, maintained, what Jest/Babel use): the map is
 * JSON.parse'd, then its mappings decoded once in a later turn of the event loop, so the two
 * blocks do not add up. A map larger than MAX_MAP_BYTES is not read. A broken, huge or missing map,
 * or one naming sources that exist neither on disk nor in `sourcesContent`, leaves the frames
 * compiled; it is counted (`sourceMapErrors`) and logged once per script (rate-limited).
 *
 * Parsed maps are kept in an LRU bounded by their estimated size (`maxCacheBytes`); an evicted map
 * is read again when a frame of its script comes back.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FlattenMap, LEAST_UPPER_BOUND, decodedMappings, originalPositionFor, traceSegment, type TraceMap } from '@jridgewell/trace-mapping';
import { LogLimiter } from '../log-limiter';
import type { MinimalLogger } from '../types';
import { isFilePath } from './paths';
import type { RuntimeMapPayload, RuntimeSourceMaps } from './runtime-maps';

/** A map (or an inline map's script) larger than this is skipped: 20 MB (about 140 MB once parsed). */
export const MAX_MAP_BYTES = 20 * 1024 * 1024;
/** Default bound of the parsed-map cache: 160 MB of estimated heap (on the worker thread). */
export const DEFAULT_MAX_CACHE_BYTES = 160 * 1024 * 1024;
/**
 * Heap held by a parsed map per byte of its JSON text. Measured with a 5.1 MB esbuild map
 * (bench/source-map-cost.js): 35.6 MB after its mappings were decoded (one array per segment).
 */
const HEAP_BYTES_PER_MAP_BYTE = 7;
/** The end of a script read to find its annotation; a longer last line (an inline map) reads the whole script. */
const TAIL_BYTES = 16 * 1024;
/** Scripts remembered as having no map (or a broken one), at most. */
const MAX_REMEMBERED_SCRIPTS = 20_000;
/** Scripts that each get a warning of their own; the rest share one a minute. */
const MAX_WARNED_SCRIPTS = 20;
/** Lookups remembered per map, at most (one per function seen). */
const MAX_LOOKUPS_PER_MAP = 50_000;
/** Scripts whose map is loaded at the same time, at most. */
const LOAD_CONCURRENCY = 4;

export interface OriginalFrame {
  /** absolute path (or URL) of the original source */
  file: string;
  /** 1-based */
  line: number;
  /** the original function name, when the map has one at the function's start */
  name?: string;
}

export interface SourceMapStats {
  /** maps that could not be used (missing, malformed, too large, naming sources that do not exist) */
  sourceMapErrors: number;
  /** parsed maps in the cache now, and their estimated heap */
  sourceMapsCached: number;
  sourceMapCacheBytes: number;
}

interface LoadedMap {
  map: TraceMap;
  bytes: number;
  /** resolved sources that exist neither on disk nor in sourcesContent */
  missingSources: Set<string>;
  /** (line, column) -> frame, for the functions seen so far (the same ones come back every window) */
  lookups: Map<number, OriginalFrame | undefined>;
}

/** One frame to map: a function's start in a script, as V8 reports it (1-based line and column). */
export interface FrameQuery {
  script: string;
  line: number;
  column: number;
  name: string;
}

/** Set by lookupAll: false when some answers may change in a later window. */
export interface LookupOutcome {
  complete: boolean;
}

/** What FrameRewriter asks: SourceMaps here, or SourceMapWorker (the same, on a worker thread). */
export interface FrameSymbolizer {
  /**
   * The original frame of each query (undefined: stays compiled), in order. Never rejects.
   * `outcome.complete` is set to false when some answers are only for now (the lookup timed out or
   * the worker failed: a later window gets them), so a caller that keeps the result (a cached
   * heap window, snapshot-encoder.ts) knows to ask again.
   */
  lookupAll(queries: readonly FrameQuery[], outcome?: LookupOutcome): Promise<(OriginalFrame | undefined)[]>;
  stats(): SourceMapStats;
  close(): Promise<void>;
}

export interface SourceMapsOptions {
  logger: MinimalLogger;
  maxCacheBytes?: number;
  maxMapBytes?: number;
  /** on the main thread: the maps TypeScript runners keep in memory (runtime-maps.ts) */
  runtime?: RuntimeSourceMaps;
}

export class SourceMaps implements FrameSymbolizer {
  /** script -> parsed map; insertion order is recency (LRU) */
  private readonly cache = new Map<string, LoadedMap>();
  private cacheBytes = 0;
  /** scripts without a usable map: not read again */
  private readonly without = new Set<string>();
  private readonly loading = new Map<string, Promise<void>>();
  private readonly logLimiter = new LogLimiter();
  private errors = 0;
  private warned = 0;
  private readonly maxCacheBytes: number;
  private readonly maxMapBytes: number;
  /** maps handed over for scripts without an annotation (RuntimeSourceMaps, from the main thread) */
  private readonly provided = new Map<string, RuntimeMapPayload>();

  constructor(private readonly options: SourceMapsOptions) {
    this.maxCacheBytes = options.maxCacheBytes ?? DEFAULT_MAX_CACHE_BYTES;
    this.maxMapBytes = options.maxMapBytes ?? MAX_MAP_BYTES;
  }

  stats(): SourceMapStats {
    const errors = this.errors + (this.options.runtime?.unmappedScripts ?? 0);
    return { sourceMapErrors: errors, sourceMapsCached: this.cache.size, sourceMapCacheBytes: this.cacheBytes };
  }

  async lookupAll(queries: readonly FrameQuery[], outcome?: LookupOutcome): Promise<(OriginalFrame | undefined)[]> {
    return this.lookupWith(queries, undefined, outcome);
  }

  /**
   * lookupAll with `provided`: maps of scripts without an annotation, from the main thread's
   * RuntimeSourceMaps (the worker's call; on the main thread, this asks its own). Scripts the
   * runtime left for a later call are not loaded now (loading them without their map would mark
   * them as having none): the outcome is then not complete.
   */
  async lookupWith(queries: readonly FrameQuery[], provided?: ReadonlyMap<string, RuntimeMapPayload>, outcome?: LookupOutcome): Promise<(OriginalFrame | undefined)[]> {
    let scripts = [...new Set(queries.map((q) => q.script))];
    const runtime = this.options.runtime;
    if (provided === undefined && runtime !== undefined) {
      const found = runtime.find(scripts.filter((s) => mappable(s) && !this.cache.has(s) && !this.without.has(s)));
      provided = found.maps;
      scripts = scripts.filter((s) => !found.pending.has(s));
      if (found.pending.size > 0 && outcome) outcome.complete = false;
    }
    // kept until each script's load is done (the worker may run two lookups at once)
    for (const [script, payload] of provided ?? []) if (!this.cache.has(script) && !this.without.has(script)) this.provided.set(script, payload);
    await this.prepare(scripts);
    return queries.map((q) => this.lookup(q.script, q.line, q.column, q.name));
  }

  async close(): Promise<void> {
    this.cache.clear();
    this.cacheBytes = 0;
  }

  /** Loads the maps of these scripts that are not known yet. Never rejects. */
  async prepare(scripts: Iterable<string>): Promise<void> {
    const wanted = [...new Set(scripts)].filter((s) => mappable(s) && !this.cache.has(s) && !this.without.has(s));
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < wanted.length) await this.load(wanted[next++]);
    };
    await Promise.all(Array.from({ length: Math.min(LOAD_CONCURRENCY, wanted.length) }, worker));
  }

  /**
   * The original frame of a function starting at (line, column) of `script` (both 1-based, as V8
   * reports them), or undefined (no map loaded, no mapping there, source missing).
   */
  lookup(script: string, line: number, column: number, compiledName: string): OriginalFrame | undefined {
    const loaded = this.cache.get(script);
    if (loaded === undefined || line < 1) return undefined;
    this.cache.delete(script); // most recently used last
    this.cache.set(script, loaded);
    const key = line * 1_000_000 + column;
    const memo = loaded.lookups.get(key);
    if (memo !== undefined || loaded.lookups.has(key)) return memo;
    const frame = this.trace(loaded, line, column, compiledName);
    if (loaded.lookups.size < MAX_LOOKUPS_PER_MAP) loaded.lookups.set(key, frame);
    return frame;
  }

  private trace(loaded: LoadedMap, line: number, column: number, compiledName: string): OriginalFrame | undefined {
    const { map } = loaded;
    const col0 = Math.max(0, column - 1);
    let pos = originalPositionFor(map, { line, column: col0 });
    if (pos.source === null) pos = originalPositionFor(map, { line, column: col0, bias: LEAST_UPPER_BOUND });
    if (pos.source === null) return undefined;
    if (loaded.missingSources.size > 0 && loaded.missingSources.has(pos.source)) return undefined;
    // tsx's and Node's maps name their sources as file: URLs; frames carry paths
    const file = pos.source.startsWith('file:') ? fileUrlToPathSafe(pos.source) : pos.source;
    return { file, line: pos.line, name: originalName(map, line - 1, col0, compiledName) };
  }

  private load(script: string): Promise<void> {
    let loading = this.loading.get(script);
    if (loading === undefined) {
      const limits = { maxMapBytes: this.maxMapBytes, maxCacheBytes: this.maxCacheBytes };
      loading = readMap(script, limits, (reason) => this.problem(script, reason), this.provided.get(script))
        .then((loaded) => {
          if (loaded === undefined) this.remember(script);
          else this.store(script, loaded);
        })
        .catch((error: unknown) => {
          this.remember(script);
          this.problem(script, error instanceof Error ? error.message : String(error));
        })
        .finally(() => {
          this.loading.delete(script);
          this.provided.delete(script);
        });
      this.loading.set(script, loading);
    }
    return loading;
  }

  private store(script: string, loaded: LoadedMap): void {
    this.cache.set(script, loaded);
    this.cacheBytes += loaded.bytes;
    for (const [oldest, entry] of this.cache) {
      if (this.cacheBytes <= this.maxCacheBytes) break;
      this.cache.delete(oldest);
      this.cacheBytes -= entry.bytes;
    }
  }

  private remember(script: string): void {
    if (this.without.size >= MAX_REMEMBERED_SCRIPTS) this.without.clear(); // bounded; re-learnt lazily
    this.without.add(script);
  }

  private problem(script: string, reason: string): void {
    this.errors++;
    // once per script (a failed script is not read again); past MAX_WARNED_SCRIPTS, one a minute
    const kind = this.warned < MAX_WARNED_SCRIPTS ? `source_map:${script}` : 'source_map';
    const suppressed = this.logLimiter.admit(kind);
    if (suppressed === undefined) return;
    this.warned++;
    const fields: Record<string, unknown> = { script: path.basename(script), reason };
    if (suppressed > 0) fields.suppressed = suppressed;
    this.options.logger.warn(fields, `continuous profiling: frames of ${path.basename(script)} stay as compiled: ${reason}`);
  }
}

interface MapLimits {
  maxMapBytes: number;
  maxCacheBytes: number;
}

/**
 * The parsed map of `script`; undefined when it declares none (and no runtime `provided` one);
 * throws when the one it declares cannot be used. Sources it names that are missing (some, not
 * all) go to `warn`.
 */
async function readMap(script: string, limits: MapLimits, warn: (reason: string) => void, provided?: RuntimeMapPayload): Promise<LoadedMap | undefined> {
  const url = await readAnnotation(script, limits.maxMapBytes);
  if (url === undefined) return provided === undefined ? undefined : parseMap(JSON.stringify(provided), script, limits, warn);
  let text: string;
  let mapPath: string;
  if (url.startsWith('data:')) {
    text = decodeDataUrl(url);
    mapPath = script;
  } else {
    if (/^[a-z][a-z0-9+.-]*:/i.test(url) && !url.startsWith('file:')) return undefined; // http(s) maps are never fetched
    mapPath = url.startsWith('file:') ? fileURLToPath(url) : path.resolve(path.dirname(script), decodeURIComponentSafe(url));
    const stat = await fsp.stat(mapPath).catch(() => undefined);
    if (stat === undefined) throw new Error(`its source map ${path.basename(mapPath)} was not found`);
    if (stat.size > limits.maxMapBytes) throw new Error(`its source map is ${mb(stat.size)} MB, more than the ${mb(limits.maxMapBytes)} MB read at most`);
    text = await fsp.readFile(mapPath, 'utf8');
  }
  return parseMap(text, mapPath, limits, warn);
}

/** A map's text, parsed and checked (size, JSON, mappings, sources); throws when it cannot be used. */
async function parseMap(text: string, mapPath: string, limits: MapLimits, warn: (reason: string) => void): Promise<LoadedMap> {
  if (text.length > limits.maxMapBytes) throw new Error(`its source map is ${mb(text.length)} MB, more than the ${mb(limits.maxMapBytes)} MB read at most`);
  if (text.length * HEAP_BYTES_PER_MAP_BYTE > limits.maxCacheBytes) {
    throw new Error(`its parsed source map (about ${mb(text.length * HEAP_BYTES_PER_MAP_BYTE)} MB) would not fit the ${mb(limits.maxCacheBytes)} MB cache`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`its source map is not valid JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  await yieldToEventLoop(); // JSON.parse and the decoding below are two separate blocks
  let map: TraceMap;
  try {
    map = FlattenMap(json as Parameters<typeof FlattenMap>[0], mapPath);
    decodedMappings(map);
  } catch (error) {
    throw new Error(`its source map is not a valid source map (${error instanceof Error ? error.message : String(error)})`);
  }
  const missingSources = await findMissingSources(map);
  if (missingSources.size > 0 && missingSources.size === map.resolvedSources.length) {
    throw new Error(`its source map names sources that do not exist: ${describeSources(missingSources)}`);
  }
  if (missingSources.size > 0) warn(`its source map names sources that do not exist: ${describeSources(missingSources)}`);
  return { map, bytes: text.length * HEAP_BYTES_PER_MAP_BYTE, missingSources, lookups: new Map() };
}

/**
 * This plugin's own compiled files (the folder holding profilers/). Installed, the plugin lives
 * under node_modules and its frames are never mapped; run from its repository (tests, the bench)
 * they are not mapped either, so its own maps alone never start the source-map worker (15-19 MB
 * peak RSS on Node 24, bench/block-causes.js) where an installed plugin would not.
 */
const OWN_FILES = path.resolve(__dirname, '..') + path.sep;

/** A script whose map is looked for: a file path outside node_modules and outside this plugin. */
export function mappable(script: string): boolean {
  return isFilePath(script) && !script.includes(`${path.sep}node_modules${path.sep}`) && !script.startsWith(OWN_FILES);
}

/**
 * Whether `script` may declare a source map: its last line (read from the tail, TAIL_BYTES) holds
 * `sourceMappingURL=`, or began before the tail (an inline map, or a long minified line: whoever
 * reads the map reads it whole). A cheap look on the event loop (one small read) that lets the
 * source-map worker stay unstarted while no script has a map. False for a script that is gone.
 */
export async function mayDeclareSourceMap(script: string): Promise<boolean> {
  const handle = await fsp.open(script, 'r').catch(() => undefined);
  if (handle === undefined) return false;
  try {
    const { tailStart, text } = await readTail(handle);
    const lineStart = text.lastIndexOf('\n');
    if (lineStart < 0 && tailStart > 0) return true;
    return text.includes('sourceMappingURL=', lineStart + 1);
  } catch {
    return true; // unreadable here: the worker's own read decides (and reports)
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * The original name of a function whose compiled start (V8: the parameter list, or an arrow's
 * first parameter) is at col0: esbuild/terser map a renamed identifier with its original name,
 * and the name of a function sits just before its start (`function a(`, `var l=n=>`). Only a
 * named segment within a few characters of the start counts, so a call's or a parameter's name is
 * never taken for the function's; without one, the compiled name stays (tsc keeps names).
 */
function originalName(map: TraceMap, line0: number, col0: number, compiledName: string): string | undefined {
  if (compiledName === '' || col0 === 0) return undefined;
  const segment = traceSegment(map, line0, col0 - 1);
  if (segment === null || segment.length !== 5) return undefined;
  if (col0 - segment[0] > compiledName.length + 3) return undefined;
  return map.names[segment[4]];
}

/** Source indexes that are neither in sourcesContent nor on disk. */
async function findMissingSources(map: TraceMap): Promise<Set<string>> {
  const missing = new Set<string>();
  const sources = map.resolvedSources;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < sources.length) {
      const i = next++;
      if (typeof map.sourcesContent?.[i] === 'string') continue;
      const source = sources[i];
      const file = source.startsWith('file:') ? fileURLToPath(source) : source;
      const exists = path.isAbsolute(file) && (await fsp.access(file).then(() => true, () => false));
      if (!exists) missing.add(source);
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, sources.length) }, worker));
  return missing;
}

function describeSources(sources: Set<string>): string {
  const names = [...sources].slice(0, 3).map((s) => path.basename(s));
  return sources.size > 3 ? `${names.join(', ')} and ${sources.size - 3} more` : names.join(', ');
}

/**
 * The URL of the script's `//# sourceMappingURL=` annotation on its last non-empty line (ECMA-426),
 * read from the tail of the file; the whole file only when that line is longer than the tail.
 */
async function readAnnotation(script: string, maxBytes: number): Promise<string | undefined> {
  const handle = await fsp.open(script, 'r').catch(() => undefined);
  if (handle === undefined) return undefined; // a script that is gone: nothing to map
  try {
    const tail = await readTail(handle);
    const { size, tailStart } = tail;
    let text = tail.text;
    const lineStart = text.lastIndexOf('\n');
    if (lineStart < 0 && tailStart > 0) {
      // the last line began before the tail: an inline map, or one long minified line
      if (!/^[A-Za-z0-9+/=]*$/.test(text.slice(0, 200)) && !text.includes('sourceMappingURL=')) return undefined;
      if (size > maxBytes * 1.4) throw new Error(`its inline source map makes the script ${mb(size)} MB, more than the ${mb(maxBytes)} MB read at most`);
      const whole = Buffer.alloc(size);
      await handle.read(whole, 0, size, 0);
      text = whole.toString('utf8').trimEnd();
    }
    const last = text.slice(text.lastIndexOf('\n') + 1);
    const match = /^\s*(?:\/\/|\/\*)[#@]\s*sourceMappingURL=(\S+?)\s*(?:\*\/)?\s*$/.exec(last);
    return match?.[1];
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** The file's last TAIL_BYTES as text (trailing white space cut), where they start, and its size. */
async function readTail(handle: fsp.FileHandle): Promise<{ size: number; tailStart: number; text: string }> {
  const { size } = await handle.stat();
  const tailStart = Math.max(0, size - TAIL_BYTES);
  const tail = Buffer.alloc(size - tailStart);
  await handle.read(tail, 0, tail.length, tailStart);
  return { size, tailStart, text: tail.toString('utf8').trimEnd() };
}

function decodeDataUrl(url: string): string {
  const comma = url.indexOf(',');
  if (comma < 0) throw new Error('its inline source map is not a data: URL');
  const meta = url.slice(5, comma);
  const payload = url.slice(comma + 1);
  if (!/^application\/json\b/i.test(meta) && meta !== '' && !meta.startsWith(';')) throw new Error(`its inline source map has type "${meta}", not application/json`);
  return meta.split(';').includes('base64') ? Buffer.from(payload, 'base64').toString('utf8') : decodeURIComponentSafe(payload);
}

function fileUrlToPathSafe(url: string): string {
  try {
    return fileURLToPath(url);
  } catch {
    return url;
  }
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function mb(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
