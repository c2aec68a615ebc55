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
import type { PathCleaner } from './paths';
import { mappable, type FrameQuery, type FrameSymbolizer } from './source-maps';

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

  /** Rewrites the frames of `profile` in place (new Location/Function arrays and string table). */
  async rewrite(profile: Profile): Promise<void> {
    const strings = profile.stringTable.strings;
    const str = (i: unknown): string => strings[Number(i)] ?? '';

    interface Frame {
      file: string;
      name: string;
      line: number;
    }
    const functionsById = new Map<number, PprofFunction>();
    for (const fn of profile.function) functionsById.set(Number(fn.id), fn);
    const framesByLine = new Map<Line, Frame>();
    const queries: FrameQuery[] = [];
    const queryIndex = new Map<string, number>();
    const queryOfLine = new Map<Line, number>();
    for (const location of profile.location) {
      for (const line of location.line) {
        const fn = functionsById.get(Number(line.functionId));
        if (fn === undefined) continue;
        const compiled = { file: str(fn.filename), name: str(fn.name), line: Number(line.line) };
        framesByLine.set(line, compiled);
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
    if (this.sourceMaps !== undefined && queries.length > 0) {
      const originals = await this.sourceMaps.lookupAll(queries);
      for (const [line, index] of queryOfLine) {
        const original = originals[index];
        const compiled = framesByLine.get(line);
        if (original === undefined || compiled === undefined) continue;
        framesByLine.set(line, { file: original.file, line: original.line, name: renamed(compiled.name, original.name, original.line) });
      }
    }
    const files = new Set<string>();
    for (const frame of framesByLine.values()) files.add(frame.file);
    await this.paths.prepare(files);

    const table = new StringTable();
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

    const functions: PprofFunction[] = [];
    const functionIds = new Map<string, number>();
    const functionFor = (frame: Frame): number => {
      const file = this.paths.clean(frame.file);
      const key = `${frame.name}\0${file}\0${frame.line}`;
      let id = functionIds.get(key);
      if (id === undefined) {
        id = functions.length + 1;
        functionIds.set(key, id);
        const name = table.dedup(frame.name);
        functions.push(new PprofFunction({ id, name, systemName: name, filename: table.dedup(file), startLine: frame.line }));
      }
      return id;
    };
    profile.location = profile.location.map((location) => {
      const lines = location.line.map((line) => {
        const frame = framesByLine.get(line);
        if (frame === undefined) return new Line({ functionId: 0, line: line.line });
        return new Line({ functionId: functionFor(frame), line: frame.line });
      });
      return new Location({ id: location.id, mappingId: location.mappingId, address: location.address, line: lines, isFolded: location.isFolded });
    });
    profile.function = functions;

    // every other string reference, through the new table
    const valueType = (v: ValueType): ValueType => new ValueType({ type: keep(v.type), unit: keep(v.unit) });
    profile.sampleType = profile.sampleType.map(valueType);
    if (profile.periodType) profile.periodType = valueType(profile.periodType);
    for (const sample of profile.sample) {
      sample.label = sample.label.map((l) => new Label({ key: keep(l.key), str: l.str ? keep(l.str) : 0, num: l.num, numUnit: l.numUnit ? keep(l.numUnit) : 0 }));
    }
    // the CPU and wall views share their mappings: new objects, never the shared ones changed
    profile.mapping = profile.mapping.map((m) => new Mapping({ ...m, filename: keep(m.filename), buildId: keep(m.buildId) }));
    profile.comment = profile.comment.filter((c) => str(c) !== ENGINE_MISSING_MAP_COMMENT).map(keep);
    profile.dropFrames = keep(profile.dropFrames);
    profile.keepFrames = keep(profile.keepFrames);
    profile.defaultSampleType = keep(profile.defaultSampleType);
    profile.docUrl = keep(profile.docUrl);
    profile.stringTable = table;
  }
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
