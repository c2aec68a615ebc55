/**
 * Turns decoded pprof profiles into the report's data: per route (the `route` sample label), the
 * total of one sample type, its share of the whole, the hottest functions, and a call tree for
 * the flame graph.
 *
 * Profiles are added one at a time and only their merged call trees are kept, so a directory of
 * many windows costs memory in proportion to the distinct stacks, not to the number of files.
 */
import type { Profile } from 'pprof-format';

export const ROUTE_LABEL = 'route';
/** The sample label of OpenTelemetry span profiles: the request's local root span id (16 hex). */
export const SPAN_ID_LABEL = 'span_id';
/** Where samples without a route label (404s, work outside requests, idle) are counted. */
export const NO_ROUTE = '(no route)';
/** Samples without a thread label in profiles that have worker threads' samples. */
export const NO_THREAD = '(no thread)';
/**
 * Which sample type the report uses, best first: CPU time, else wall time, else sample counts;
 * a heap profile (only in-use space and objects) is reported as in-use space.
 */
export const SAMPLE_TYPE_PREFERENCE: readonly string[] = ['cpu', 'wall', 'samples', 'sample', 'inuse_space', 'inuse_objects'];
/** The sample types of a heap profile: a snapshot of what is live, not a sum over time. */
export const HEAP_SAMPLE_TYPES: readonly string[] = ['inuse_space', 'inuse_objects'];

export function isHeapSampleType(type: string): boolean {
  return HEAP_SAMPLE_TYPES.includes(type);
}
export const DEFAULT_TOP = 10;

export type SortBy = 'self' | 'total';

/** One flame graph frame, in the compact shape d3-flame-graph reads (n: name, v: value, c: children). */
export interface FlameNode {
  n: string;
  /** file:line of the function, '' when unknown */
  f: string;
  /** inclusive value: this frame and everything it called */
  v: number;
  c?: FlameNode[];
}

export interface FunctionRow {
  name: string;
  /** file:line, '' when unknown */
  location: string;
  /** value where this function was the leaf (running itself) */
  self: number;
  /** value where this function was anywhere on the stack (recursion counted once) */
  total: number;
  selfShareOfRoute: number;
  selfShareOfAll: number;
  totalShareOfRoute: number;
  totalShareOfAll: number;
}

export interface RouteReport {
  route: string;
  total: number;
  /** share of the whole report's total (all routes) */
  share: number;
  /** the hottest functions, by `sortBy`, at most `top` */
  functions: FunctionRow[];
  /** root frame named after the route; its children are the outermost frames */
  flame: FlameNode;
}

export interface SkippedProfile {
  source: string;
  reason: string;
}

export interface ReportData {
  sampleType: { type: string; unit: string };
  /** profiles that contributed */
  profileCount: number;
  appNames: string[];
  /** covered time (from the profiles' time and duration), unix ms */
  startMs?: number;
  endMs?: number;
  total: number;
  /** routes by total, largest first (only those kept by the route filter) */
  routes: RouteReport[];
  /** routes left out by the route filter */
  hiddenRoutes: number;
  /**
   * By JavaScript thread (the `thread` label: `main`, worker names), largest first, when the
   * profiles have worker threads' samples (src/workers/); shares of the whole total.
   */
  threads?: ThreadShare[];
  top: number;
  sortBy: SortBy;
  /** inputs that were not used, and why */
  skipped: SkippedProfile[];
  /** when given: only the samples of these spans (span_id label) were counted */
  spanIds?: string[];
  /** a heap report: the snapshot shown, and the in-use objects beside the bytes */
  heap?: HeapDetails;
}

export interface ThreadShare {
  thread: string;
  total: number;
  share: number;
}

/** The `thread` label's key (src/labels/label-set.ts THREAD_LABEL; the report reads files, not the plugin). */
const THREAD_LABEL = 'thread';

export interface HeapDetails {
  /** the heap profile shown (the latest of the input) */
  source: string;
  /** its time (pprof time_nanos, else the file name's), unix ms; undefined when neither says */
  timeMs: number | undefined;
  /** heap profiles of the input left out because a later one exists */
  earlierSnapshots: number;
  /** in-use objects of the whole snapshot, and per function (key: name + NUL + location) */
  objectsTotal: number;
  objectsByFunction: Record<string, { self: number; total: number }>;
}

export function functionKey(row: Pick<FunctionRow, 'name' | 'location'>): string {
  return `${row.name}\u0000${row.location}`;
}

export interface BuildOptions {
  top?: number;
  sortBy?: SortBy;
  /** keep only the routes for which this is true (shares stay relative to all routes) */
  routeFilter?: (route: string) => boolean;
}

export interface BuilderOptions {
  /**
   * Count only samples whose `span_id` label is one of these (what Grafana's "Profiles for this
   * span" asks Pyroscope for): a trace's slow span, offline.
   */
  spanIds?: ReadonlySet<string>;
}

// ---------------------------------------------------------------------------------------------

/** Names of a profile's sample types, in order. */
export function sampleTypeNames(profile: Profile): string[] {
  const strings = profile.stringTable.strings;
  return profile.sampleType.map((t) => strings[Number(t.type)] ?? '');
}

/** The best sample type any of these profiles has (see SAMPLE_TYPE_PREFERENCE), or undefined. */
export function chooseSampleType(typesPerProfile: Iterable<readonly string[]>): string | undefined {
  const present = new Set<string>();
  for (const types of typesPerProfile) for (const t of types) present.add(t);
  return SAMPLE_TYPE_PREFERENCE.find((t) => present.has(t));
}

/** A function as the report shows it; frames with the same key are the same function. */
interface Frame {
  readonly key: string;
  readonly name: string;
  readonly location: string;
}

/** One slot per sample type of SAMPLE_TYPE_PREFERENCE: every profile is read once, for all of them. */
const SLOTS = SAMPLE_TYPE_PREFERENCE.length;

class CallTreeNode {
  /** per slot: value of samples whose stack passes through (or ends at) this node */
  readonly total: number[] = new Array<number>(SLOTS).fill(0);
  /** per slot: value of samples whose leaf is this node */
  readonly self: number[] = new Array<number>(SLOTS).fill(0);
  /** created on the first child: most nodes of a large tree are leaves or have one child */
  children: Map<string, CallTreeNode> | undefined;

  constructor(readonly frame: Frame) {}

  child(frame: Frame): CallTreeNode {
    this.children ??= new Map();
    let node = this.children.get(frame.key);
    if (!node) {
      node = new CallTreeNode(frame);
      this.children.set(frame.key, node);
    }
    return node;
  }

  childNodes(): Iterable<CallTreeNode> {
    return this.children?.values() ?? [];
  }
}

/** What the builder remembers of each profile, to choose the sample type and explain skips. */
interface AddedProfile {
  source: string;
  appName: string | undefined;
  types: string[];
  /** slots this profile contributed to */
  slots: Set<number>;
  /** slots it has but could not contribute to, and why */
  refused: Map<number, string>;
  startMs: number | undefined;
  endMs: number | undefined;
}

/** A value column of a profile feeding a slot. */
interface SlotColumn {
  slot: number;
  column: number;
}

/**
 * Accumulates profiles into per-route call trees, for every preferred sample type at once, so
 * each file is decoded only once; `build` then reports the best type the profiles have.
 */
export class ReportBuilder {
  private readonly routes = new Map<string, CallTreeNode>();
  /** per `thread` label value, per slot */
  private readonly threads = new Map<string, number[]>();
  private readonly frames = new Map<string, Frame>();
  private readonly units: (string | undefined)[] = new Array<string | undefined>(SLOTS);
  private readonly added: AddedProfile[] = [];

  constructor(
    private readonly cwd: string = process.cwd(),
    private readonly builderOptions: BuilderOptions = {},
  ) {}

  add(profile: Profile, source: string, appName?: string): void {
    const strings = profile.stringTable.strings;
    const types = sampleTypeNames(profile);
    const entry: AddedProfile = { source, appName, types, slots: new Set(), refused: new Map(), ...timeRange(profile) };
    this.added.push(entry);
    const columns = this.slotColumns(profile, types, entry);
    if (columns.length === 0) return;

    const framesByLocation = this.framesByLocation(profile);
    const routeKey = strings.indexOf(ROUTE_LABEL);
    const threadKey = strings.indexOf(THREAD_LABEL);
    const spanIds = this.builderOptions.spanIds;
    const spanKey = spanIds === undefined ? -1 : strings.indexOf(SPAN_ID_LABEL);
    // asked for spans and no sample of this profile has a span_id: nothing to count
    if (spanIds !== undefined && spanKey < 0) return;
    for (const sample of profile.sample) {
      if (columns.every(({ column }) => Number(sample.value[column] ?? 0) === 0)) continue;
      if (spanIds !== undefined && !spanIds.has(labelValue(sample.label, spanKey, strings) ?? '')) continue;
      const route = routeOf(sample.label, routeKey, strings);
      this.addSample(route, sample.locationId, framesByLocation, sample.value, columns);
      if (threadKey >= 0) this.addThread(labelValue(sample.label, threadKey, strings), sample.value, columns);
    }
  }

  private addThread(thread: string | undefined, values: readonly (number | bigint)[], columns: readonly SlotColumn[]): void {
    // "Non JS threads activity" (GC, libuv's pool) comes from the main engine without a thread
    const key = thread || NO_THREAD;
    let into = this.threads.get(key);
    if (!into) {
      into = new Array<number>(SLOTS).fill(0);
      this.threads.set(key, into);
    }
    addValues(into, values, columns);
  }

  /** The report of the best sample type present (or `sampleType` when given). */
  build(options: BuildOptions & { sampleType?: string } = {}): ReportData {
    const type = options.sampleType ?? chooseSampleType(this.added.map((p) => [...p.slots].map((i) => SAMPLE_TYPE_PREFERENCE[i]!)));
    const slot = type === undefined ? -1 : SAMPLE_TYPE_PREFERENCE.indexOf(type);
    const used = this.added.filter((p) => p.slots.has(slot));
    const top = options.top ?? DEFAULT_TOP;
    const sortBy = options.sortBy ?? 'self';
    const roots = slot < 0 ? [] : [...this.routes.entries()].filter(([, root]) => root.total[slot]! > 0);
    const total = roots.reduce((sum, [, root]) => sum + root.total[slot]!, 0);
    const all = roots.sort(([ra, a], [rb, b]) => b.total[slot]! - a.total[slot]! || compareText(ra, rb));
    const kept = options.routeFilter ? all.filter(([route]) => options.routeFilter!(route)) : all;
    const starts = used.map((p) => p.startMs).filter((t): t is number => t !== undefined);
    const ends = used.map((p) => p.endMs).filter((t): t is number => t !== undefined);
    return {
      sampleType: { type: type ?? 'none', unit: (slot >= 0 ? this.units[slot] : undefined) ?? '' },
      profileCount: used.length,
      appNames: [...new Set(used.map((p) => p.appName).filter((a): a is string => !!a))].sort(),
      ...(starts.length > 0 ? { startMs: Math.min(...starts), endMs: Math.max(...ends) } : {}),
      total,
      routes: kept.map(([route, root]) => routeReport(route, root, slot, total, top, sortBy)),
      hiddenRoutes: all.length - kept.length,
      ...(this.threads.size > 0 && slot >= 0 ? { threads: threadShares(this.threads, slot, total) } : {}),
      top,
      sortBy,
      skipped: this.added.filter((p) => !p.slots.has(slot)).map((p) => ({ source: p.source, reason: skipReason(p, slot, type) })),
      ...(this.builderOptions.spanIds !== undefined ? { spanIds: [...this.builderOptions.spanIds].sort() } : {}),
    };
  }

  /** The profile's value columns for each preferred sample type it has in a consistent unit. */
  private slotColumns(profile: Profile, types: readonly string[], entry: AddedProfile): SlotColumn[] {
    const strings = profile.stringTable.strings;
    const columns: SlotColumn[] = [];
    types.forEach((type, column) => {
      const slot = SAMPLE_TYPE_PREFERENCE.indexOf(type);
      if (slot < 0) return;
      const unit = strings[Number(profile.sampleType[column]!.unit)] ?? '';
      const known = this.units[slot];
      if (known !== undefined && known !== unit) {
        entry.refused.set(slot, `'${type}' is in ${unit}, the other profiles in ${known}`);
        return;
      }
      this.units[slot] = unit;
      entry.slots.add(slot);
      columns.push({ slot, column });
    });
    return columns;
  }

  /** Frames of each location, outermost first (inlined functions: the last line is the caller). */
  private framesByLocation(profile: Profile): Map<number, Frame[]> {
    const strings = profile.stringTable.strings;
    const functions = new Map(profile.function.map((f) => [Number(f.id), f]));
    const out = new Map<number, Frame[]>();
    for (const location of profile.location) {
      const frames = [...location.line].reverse().map((line) => {
        const fn = functions.get(Number(line.functionId));
        const file = fn ? strings[Number(fn.filename)] ?? '' : '';
        const name = fn ? functionName(strings[Number(fn.name)] ?? '', file) : '(unknown)';
        return this.frame(name, file, lineNumber(line.line, fn?.startLine));
      });
      out.set(Number(location.id), frames);
    }
    return out;
  }

  private frame(name: string, file: string, line: number): Frame {
    const key = `${name}\u0000${file}\u0000${line}`;
    let frame = this.frames.get(key);
    if (!frame) {
      frame = { key, name, location: formatLocation(file, line, this.cwd) };
      this.frames.set(key, frame);
    }
    return frame;
  }

  /** Walks the sample's stack from the outermost frame (pprof lists the leaf first). */
  private addSample(
    route: string,
    locationIds: readonly (number | bigint)[],
    framesByLocation: ReadonlyMap<number, readonly Frame[]>,
    values: readonly (number | bigint)[],
    columns: readonly SlotColumn[],
  ): void {
    let node = this.routes.get(route);
    if (!node) {
      node = new CallTreeNode({ key: route, name: route, location: '' });
      this.routes.set(route, node);
    }
    addValues(node.total, values, columns);
    for (let i = locationIds.length - 1; i >= 0; i--) {
      const frames = framesByLocation.get(Number(locationIds[i]));
      if (!frames) continue;
      for (const frame of frames) {
        node = node.child(frame);
        addValues(node.total, values, columns);
      }
    }
    addValues(node.self, values, columns);
  }
}

function threadShares(threads: ReadonlyMap<string, number[]>, slot: number, total: number): ThreadShare[] {
  return [...threads]
    .map(([thread, values]) => ({ thread, total: values[slot]!, share: total > 0 ? values[slot]! / total : 0 }))
    .filter((t) => t.total > 0)
    .sort((a, b) => b.total - a.total || compareText(a.thread, b.thread));
}

function addValues(into: number[], values: readonly (number | bigint)[], columns: readonly SlotColumn[]): void {
  for (const { slot, column } of columns) into[slot]! += Number(values[column] ?? 0);
}

function labelValue(labels: Profile['sample'][number]['label'], key: number, strings: readonly string[]): string | undefined {
  for (const label of labels) if (Number(label.key) === key) return strings[Number(label.str)];
  return undefined;
}

function routeOf(labels: Profile['sample'][number]['label'], routeKey: number, strings: readonly string[]): string {
  if (routeKey < 0) return NO_ROUTE;
  for (const label of labels) {
    if (Number(label.key) === routeKey) {
      const value = strings[Number(label.str)];
      if (value) return value;
    }
  }
  return NO_ROUTE;
}

function timeRange(profile: Profile): { startMs: number | undefined; endMs: number | undefined } {
  const startNs = Number(profile.timeNanos);
  if (!(startNs > 0)) return { startMs: undefined, endMs: undefined };
  return { startMs: startNs / 1e6, endMs: (startNs + Number(profile.durationNanos)) / 1e6 };
}

function skipReason(profile: AddedProfile, slot: number, type: string | undefined): string {
  const refused = profile.refused.get(slot);
  if (refused) return refused;
  const has = profile.types.join(', ') || 'none';
  return type === undefined ? `no cpu, wall, samples or inuse_space sample type (has: ${has})` : `no '${type}' sample type (has: ${has})`;
}

/** Report of decoded profiles held in memory, using the best sample type they have. */
export function buildReport(profiles: readonly Profile[], options: BuildOptions & { sampleType?: string } = {}): ReportData {
  const builder = new ReportBuilder();
  profiles.forEach((profile, i) => builder.add(profile, `profile #${i + 1}`));
  return builder.build(options);
}

// ---------------------------------------------------------------------------------------------

function routeReport(route: string, root: CallTreeNode, slot: number, allTotal: number, top: number, sortBy: SortBy): RouteReport {
  const total = root.total[slot]!;
  return {
    route,
    total,
    share: ratio(total, allTotal),
    functions: hottestFunctions(root, slot, allTotal, top, sortBy),
    flame: toFlameNode(root, slot)!,
  };
}

function hottestFunctions(root: CallTreeNode, slot: number, allTotal: number, top: number, sortBy: SortBy): FunctionRow[] {
  const routeTotal = root.total[slot]!;
  const rows = new Map<string, { frame: Frame; self: number; total: number }>();
  const onPath = new Map<string, number>();
  // Depth-first with the functions already on the path: a recursive function's time counts once.
  const visit = (node: CallTreeNode): void => {
    const key = node.frame.key;
    let row = rows.get(key);
    if (!row) {
      row = { frame: node.frame, self: 0, total: 0 };
      rows.set(key, row);
    }
    row.self += node.self[slot]!;
    const depth = onPath.get(key) ?? 0;
    if (depth === 0) row.total += node.total[slot]!;
    onPath.set(key, depth + 1);
    for (const child of node.childNodes()) visit(child);
    onPath.set(key, depth);
  };
  for (const child of root.childNodes()) visit(child);

  const key = sortBy === 'self' ? 'self' : 'total';
  return [...rows.values()]
    .filter((r) => r[key] > 0)
    .sort((a, b) => b[key] - a[key] || compareText(a.frame.name, b.frame.name) || compareText(a.frame.location, b.frame.location))
    .slice(0, Math.max(0, top))
    .map((r) => ({
      name: r.frame.name,
      location: r.frame.location,
      self: r.self,
      total: r.total,
      selfShareOfRoute: ratio(r.self, routeTotal),
      selfShareOfAll: ratio(r.self, allTotal),
      totalShareOfRoute: ratio(r.total, routeTotal),
      totalShareOfAll: ratio(r.total, allTotal),
    }));
}

/** The flame graph of one sample type: frames without any of its value are left out. */
function toFlameNode(node: CallTreeNode, slot: number): FlameNode | undefined {
  const value = node.total[slot]!;
  if (value <= 0) return undefined;
  const out: FlameNode = { n: node.frame.name, f: node.frame.location, v: value };
  const children = [...node.childNodes()]
    .sort((a, b) => b.total[slot]! - a.total[slot]!)
    .map((child) => toFlameNode(child, slot))
    .filter((c): c is FlameNode => c !== undefined);
  if (children.length > 0) out.c = children;
  return out;
}

function ratio(part: number, whole: number): number {
  return whole > 0 ? part / whole : 0;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The function's own name. Grafana's Node SDK (@pyroscope/nodejs) renames functions to
 * `<file>:<name>:<line>`, the file as it shows it (relative to the writer's working directory as
 * `./...`, relative to its package under node_modules, or empty), while the function's filename
 * and line stay set: the report shows the name alone, as for other tools' profiles, and file:line
 * from those fields. A name that does not start with its own file is left as it is.
 */
export function functionName(raw: string, file: string): string {
  for (let colon = raw.indexOf(':'); colon >= 0; colon = raw.indexOf(':', colon + 1)) {
    const prefix = raw.slice(0, colon);
    if (!(prefix === '' ? file === '' : sameFile(prefix, file))) continue;
    const rest = /^(.*):\d+$/s.exec(raw.slice(colon + 1));
    if (rest) return rest[1] || '(anonymous)';
  }
  return raw || '(anonymous)';
}

function sameFile(shown: string, file: string): boolean {
  if (shown === file) return true;
  const tail = shown.startsWith('./') ? shown.slice(1) : `/${shown}`;
  return file.endsWith(tail);
}

/** pprof may pack a column into the high 32 bits of the line; the report shows the line only. */
function lineNumber(line: number | bigint | undefined, startLine: number | bigint | undefined): number {
  const n = Number(line ?? 0) || Number(startLine ?? 0);
  return n > 0xffffffff ? n % 2 ** 32 : n;
}

/** `file:line`, relative to the working directory when under it, without a file:// prefix. */
export function formatLocation(file: string, line: number, cwd: string): string {
  if (!file) return '';
  let shown = file.startsWith('file://') ? decodeURIComponent(file.slice('file://'.length)) : file;
  const prefix = cwd.endsWith('/') ? cwd : `${cwd}/`;
  if (shown.startsWith(prefix)) shown = shown.slice(prefix.length);
  return line > 0 ? `${shown}:${line}` : shown;
}
