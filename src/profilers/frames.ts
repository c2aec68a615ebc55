/**
 * The last rewrite of a window's profile before encoding: every frame (pprof Location -> Line ->
 * Function) gets its original file, line and name from the script's source map (when on and
 * found), and a clean file name (src/profilers/paths.ts). The string table is rebuilt from what
 * the profile still references, so no compiled absolute path stays behind in it.
 *
 * The engine is started with FRAME_COLUMNS_ENGINE_OPTIONS: its serializer then keeps each frame's
 * column (Line.column; by default it drops it), which a minified bundle needs (all on line 1).
 * Columns are dropped again here, as before.
 */
import { Function as PprofFunction, Label, Line, Location, Mapping, Profile, StringTable, ValueType } from 'pprof-format';
import { Interned } from './interned';
import type { PathCleaner } from './paths';
import { mappable, type FrameQuery, type FrameSymbolizer, type LookupOutcome } from './source-maps';

/** The engine's serializer tag for frames it could not map; it is what makes it keep the column. */
const ENGINE_MISSING_MAP_COMMENT = 'dd:has-missing-map-files';

interface EngineLocation {
  file: string;
  line: number;
  column: number;
  name: string;
  missingMapFile?: boolean;
}

/**
 * What @datadog/pprof's serializer calls per frame (only `mappingInfo`): marking a frame as
 * "map missing" makes it emit the column with `columnNumbers: 'emit'`. Only frames that can have a
 * map (mappable(): not node internals, node_modules or this plugin) are marked, so the others keep
 * one Location per function line, as without source maps, and cost no copy here. The mapping
 * itself happens later, asynchronously, in FrameRewriter.
 */
const keepColumns = {
  mappingInfo: (location: EngineLocation): EngineLocation => (location.file && mappable(location.file) ? { ...location, missingMapFile: true } : location),
};

/** Options for time.start / heap.profile that keep frame columns for FrameRewriter. */
export const FRAME_COLUMNS_ENGINE_OPTIONS = { sourceMapper: keepColumns as never, columnNumbers: 'emit' as const };

export class FrameRewriter {
  constructor(
    private readonly paths: PathCleaner,
    /** undefined: sourceMaps off */
    private readonly sourceMaps: FrameSymbolizer | undefined,
  ) {}

  /** True when frames carry columns to map (the engine options above are wanted). */
  get wantsColumns(): boolean {
    return this.sourceMaps !== undefined;
  }

  /**
   * Rewrites the frames of `profile` in place (new Location/Function arrays and string table).
   * Resolves true when the result is final (the same input gives the same output later), false
   * when some frames stayed compiled for now only (a source-map lookup timed out).
   */
  async rewrite(profile: Profile): Promise<boolean> {
    const strings = profile.stringTable.strings;
    const { frames, queries, queryOfLine } = this.compiledFrames(profile);
    const outcome: LookupOutcome = { complete: true };
    if (this.sourceMaps !== undefined && queries.length > 0) {
      const originals = await this.sourceMaps.lookupAll(queries, outcome);
      for (const [line, index] of queryOfLine) {
        const original = originals[index];
        const compiled = frames.get(line);
        if (original === undefined || compiled === undefined) continue;
        frames.set(line, { file: original.file, line: original.line, name: renamed(compiled.name, original.name, original.line) });
      }
    }
    await this.paths.prepare(new Set([...frames.values()].map((frame) => frame.file)));
    const table = new StringTable();
    this.rebuildLocations(profile, frames, table);
    remapStrings(profile, strings, table);
    return outcome.complete;
  }

  /** Every line's frame as compiled, and the distinct (script, line, column) lookups for the source maps. */
  private compiledFrames(profile: Profile): { frames: Map<Line, Frame>; queries: FrameQuery[]; queryOfLine: Map<Line, number> } {
    const strings = profile.stringTable.strings;
    const str = (i: unknown): string => strings[Number(i)] ?? '';
    const functionsById = new Map<number, PprofFunction>();
    for (const fn of profile.function) functionsById.set(Number(fn.id), fn);
    const frames = new Map<Line, Frame>();
    const queries: FrameQuery[] = [];
    const queryIndex = new Map<string, number>();
    const queryOfLine = new Map<Line, number>();
    for (const location of profile.location) {
      for (const line of location.line) {
        const fn = functionsById.get(Number(line.functionId));
        if (fn === undefined) continue;
        const compiled = { file: str(fn.filename), name: str(fn.name), line: Number(line.line) };
        frames.set(line, compiled);
        const column = Number(line.column);
        if (this.sourceMaps === undefined || column <= 0 || !mappable(compiled.file)) continue;
        const key = `${compiled.file}\0${compiled.line}\0${column}\0${compiled.name}`;
        let index = queryIndex.get(key);
        if (index === undefined) {
          index = queries.push({ script: compiled.file, line: compiled.line, column, name: compiled.name }) - 1;
          queryIndex.set(key, index);
        }
        queryOfLine.set(line, index);
      }
    }
    return { frames, queries, queryOfLine };
  }

  /** New Locations and Functions from the final frames, with clean file names, into `table`. */
  private rebuildLocations(profile: Profile, frames: Map<Line, Frame>, table: StringTable): void {
    const functions = new Interned<PprofFunction>();
    const functionFor = (frame: Frame): number => {
      const file = this.paths.clean(frame.file);
      return functions.idOf(`${frame.name}\0${file}\0${frame.line}`, (id) => {
        const name = table.dedup(frame.name);
        return new PprofFunction({ id, name, systemName: name, filename: table.dedup(file), startLine: frame.line });
      });
    };
    profile.location = profile.location.map((location) => {
      const lines = location.line.map((line) => {
        const frame = frames.get(line);
        if (frame === undefined) return new Line({ functionId: 0, line: line.line });
        return new Line({ functionId: functionFor(frame), line: frame.line });
      });
      return new Location({ id: location.id, mappingId: location.mappingId, address: location.address, line: lines, isFolded: location.isFolded });
    });
    profile.function = functions.items;
  }
}

interface Frame {
  file: string;
  name: string;
  line: number;
}

/** Every string reference but the frames', from the old `strings` through the new `table`, which becomes the profile's. */
function remapStrings(profile: Profile, strings: readonly string[], table: StringTable): void {
  const remapped = new Map<number, number>();
  const keep = (i: unknown): number => {
    const old = Number(i);
    let index = remapped.get(old);
    if (index === undefined) {
      index = table.dedup(strings[old] ?? '');
      remapped.set(old, index);
    }
    return index;
  };
  const valueType = (v: ValueType): ValueType => new ValueType({ type: keep(v.type), unit: keep(v.unit) });
  profile.sampleType = profile.sampleType.map(valueType);
  if (profile.periodType) profile.periodType = valueType(profile.periodType);
  for (const sample of profile.sample) {
    sample.label = sample.label.map((l) => new Label({ key: keep(l.key), str: l.str ? keep(l.str) : 0, num: l.num, numUnit: l.numUnit ? keep(l.numUnit) : 0 }));
  }
  // the CPU and wall views share their mappings: new objects, never the shared ones changed
  profile.mapping = profile.mapping.map((m) => new Mapping({ ...m, filename: keep(m.filename), buildId: keep(m.buildId) }));
  profile.comment = profile.comment.filter((c) => (strings[Number(c)] ?? '') !== ENGINE_MISSING_MAP_COMMENT).map(keep);
  profile.dropFrames = keep(profile.dropFrames);
  profile.keepFrames = keep(profile.keepFrames);
  profile.defaultSampleType = keep(profile.defaultSampleType);
  profile.docUrl = keep(profile.docUrl);
  profile.stringTable = table;
}

/**
 * The name to show: the map's original name (a minified bundle), else the compiled one; an
 * anonymous function's engine-made name `(anonymous:L#<line>:C#<col>)` names the original line.
 */
function renamed(compiled: string, original: string | undefined, originalLine: number): string {
  if (original !== undefined && original !== '') return original;
  if (compiled.startsWith('(anonymous:L#')) return `(anonymous:L#${originalLine})`;
  return compiled;
}
