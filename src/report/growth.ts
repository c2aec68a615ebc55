/**
 * Heap growth between two snapshots: what a leak looks like offline. The earliest and the latest
 * heap profile of the input are turned into call trees of in-use bytes, the trees are lined up
 * frame by frame (function name + file:line, as the report names them, so two windows of the
 * same process match), and the stacks and functions whose in-use bytes grew most are ranked,
 * with the growth per minute when both snapshots say when they were taken.
 *
 * Heap samples carry no route (V8 records no request context for allocations): every route tree
 * the builder makes of a snapshot is merged into one tree for the whole process.
 */
import { DEFAULT_TOP, ReportBuilder, type FlameNode, type SortBy } from './aggregate';
import type { HeapSnapshot } from './heap-input';

/** A frame of the latest snapshot's tree, with how much its inclusive in-use bytes grew. */
export interface GrowthNode extends FlameNode {
  /** inclusive growth, bytes: latest minus earliest (negative: shrank); d3-flame-graph's `d` */
  d: number;
  c?: GrowthNode[];
}

export interface FunctionGrowth {
  name: string;
  location: string;
  /**
   * in-use bytes the function allocated itself (it was the leaf), or through V8 built-ins it
   * called (frames without a file), in each snapshot
   */
  selfBefore: number;
  selfAfter: number;
  /** in-use bytes of every stack the function was on (recursion counted once) */
  totalBefore: number;
  totalAfter: number;
}

export interface StackGrowth {
  /** outermost frame first */
  frames: string[];
  before: number;
  after: number;
}

export interface SnapshotSummary {
  source: string;
  timeMs: number | undefined;
  /** in-use bytes of the whole snapshot */
  bytes: number;
}

export interface GrowthReport {
  unit: string;
  appNames: string[];
  earliest: SnapshotSummary;
  latest: SnapshotSummary;
  /** heap snapshots in the input (within the time range when one was given) */
  snapshots: number;
  /** latest minus earliest, ms; undefined when a snapshot has no time */
  elapsedMs: number | undefined;
  /** by growth (self or total, as sortBy), growing ones only, at most `top` */
  functions: FunctionGrowth[];
  /** every function whose in-use bytes shrank, and by how much in all (self) */
  shrunk: { functions: number; bytes: number };
  /** the stacks whose own bytes grew most, at most `top` */
  stacks: StackGrowth[];
  /** the latest snapshot's tree coloured by growth (frames gone since the earliest are not in it) */
  tree: GrowthNode;
  top: number;
  sortBy: SortBy;
}

/** What the growth ranking takes from the command line. */
export interface GrowthOptions {
  top?: number;
  sortBy?: SortBy;
}

/** A tree of one snapshot, frames keyed as the report names them. */
interface SnapshotTree {
  name: string;
  location: string;
  value: number;
  children: Map<string, SnapshotTree>;
}

function frameKey(name: string, location: string): string {
  return `${name}\u0000${location}`;
}

/** The snapshot's in-use bytes as one tree: the builder's route trees merged under one root. */
function snapshotTree(snapshot: HeapSnapshot): SnapshotTree {
  const builder = new ReportBuilder(process.cwd());
  builder.add(snapshot.profile, snapshot.source, snapshot.appName);
  const report = builder.build({ sampleType: 'inuse_space', top: 0 });
  const root: SnapshotTree = { name: 'heap', location: '', value: 0, children: new Map() };
  for (const route of report.routes) {
    root.value += route.flame.v;
    for (const child of route.flame.c ?? []) mergeInto(root, child);
  }
  return root;
}

function mergeInto(parent: SnapshotTree, node: FlameNode): void {
  const key = frameKey(node.n, node.f);
  let into = parent.children.get(key);
  if (!into) {
    into = { name: node.n, location: node.f, value: 0, children: new Map() };
    parent.children.set(key, into);
  }
  into.value += node.v;
  for (const child of node.c ?? []) mergeInto(into, child);
}

const EMPTY: SnapshotTree = { name: '', location: '', value: 0, children: new Map() };

function selfValue(node: SnapshotTree): number {
  let children = 0;
  for (const child of node.children.values()) children += child.value;
  return node.value - children;
}

/** A frame of the walk: its node in each snapshot (EMPTY where it is absent). */
interface PairedFrame {
  before: SnapshotTree;
  after: SnapshotTree;
  /** the side that has it, for its name and location */
  named: SnapshotTree;
}

/** Walks both trees together: every path of either, outermost frame first, on entering and leaving. */
function walkPairs(
  before: SnapshotTree,
  after: SnapshotTree,
  visit: (path: readonly PairedFrame[], enter: boolean) => void,
  path: PairedFrame[] = [],
): void {
  const keys = new Set([...before.children.keys(), ...after.children.keys()]);
  for (const key of keys) {
    const b = before.children.get(key) ?? EMPTY;
    const a = after.children.get(key) ?? EMPTY;
    path.push({ before: b, after: a, named: a === EMPTY ? b : a });
    visit(path, true);
    walkPairs(b, a, visit, path);
    visit(path, false);
    path.pop();
  }
}

/**
 * Whose self bytes a frame's are: its own, or for a frame without a file (a V8 built-in such as
 * String.prototype.padEnd or Array.prototype.push, which allocate for the code that called
 * them) the nearest caller that has one, so the ranking names the application's function.
 */
function selfOwner(path: readonly PairedFrame[]): PairedFrame {
  for (let i = path.length - 1; i >= 0; i--) if (path[i]!.named.location !== '') return path[i]!;
  return path[path.length - 1]!;
}

function growthTree(before: SnapshotTree, after: SnapshotTree): GrowthNode {
  const node: GrowthNode = { n: after.name, f: after.location, v: after.value, d: after.value - before.value };
  const children: GrowthNode[] = [];
  for (const [key, a] of after.children) children.push(growthTree(before.children.get(key) ?? EMPTY, a));
  if (children.length > 0) node.c = children.sort((x, y) => y.v - x.v);
  return node;
}

/**
 * Per function: self bytes (its own and its built-ins', see selfOwner) and total bytes on each
 * side; a recursive function's total counts once.
 */
function functionGrowth(before: SnapshotTree, after: SnapshotTree): FunctionGrowth[] {
  const rows = new Map<string, FunctionGrowth>();
  const row = (frame: SnapshotTree): FunctionGrowth => {
    const key = frameKey(frame.name, frame.location);
    let found = rows.get(key);
    if (!found) {
      found = { name: frame.name, location: frame.location, selfBefore: 0, selfAfter: 0, totalBefore: 0, totalAfter: 0 };
      rows.set(key, found);
    }
    return found;
  };
  const onPath = new Map<string, number>();
  walkPairs(before, after, (path, enter) => {
    const frame = path[path.length - 1]!;
    const key = frameKey(frame.named.name, frame.named.location);
    const depth = onPath.get(key) ?? 0;
    if (!enter) {
      onPath.set(key, depth - 1);
      return;
    }
    const owner = row(selfOwner(path).named);
    owner.selfBefore += selfValue(frame.before);
    owner.selfAfter += selfValue(frame.after);
    if (depth === 0) {
      const own = row(frame.named);
      own.totalBefore += frame.before.value;
      own.totalAfter += frame.after.value;
    }
    onPath.set(key, depth + 1);
  });
  return [...rows.values()];
}

function stackGrowth(before: SnapshotTree, after: SnapshotTree): StackGrowth[] {
  const stacks: StackGrowth[] = [];
  walkPairs(before, after, (path, enter) => {
    if (!enter) return;
    const frame = path[path.length - 1]!;
    const self = { before: selfValue(frame.before), after: selfValue(frame.after) };
    if (self.before !== 0 || self.after !== 0) stacks.push({ frames: path.map((p) => p.named.name), ...self });
  });
  return stacks;
}

export function selfGrowth(f: FunctionGrowth): number {
  return f.selfAfter - f.selfBefore;
}

export function totalGrowth(f: FunctionGrowth): number {
  return f.totalAfter - f.totalBefore;
}

function summary(snapshot: HeapSnapshot, tree: SnapshotTree): SnapshotSummary {
  return { source: snapshot.source, timeMs: snapshot.timeMs, bytes: tree.value };
}

/** Ranks what grew from `earliest` to `latest` (two snapshots of one process, ideally). */
export function buildGrowthReport(earliest: HeapSnapshot, latest: HeapSnapshot, snapshots: number, options: GrowthOptions = {}): GrowthReport {
  const top = options.top ?? DEFAULT_TOP;
  const sortBy = options.sortBy ?? 'self';
  const before = snapshotTree(earliest);
  const after = snapshotTree(latest);
  const growthOf = sortBy === 'self' ? selfGrowth : totalGrowth;
  const all = functionGrowth(before, after);
  const shrinking = all.filter((f) => selfGrowth(f) < 0);
  const elapsed = earliest.timeMs !== undefined && latest.timeMs !== undefined ? latest.timeMs - earliest.timeMs : undefined;
  return {
    unit: 'bytes',
    appNames: [...new Set([earliest.appName, latest.appName].filter((a): a is string => !!a))].sort(),
    earliest: summary(earliest, before),
    latest: summary(latest, after),
    snapshots,
    elapsedMs: elapsed,
    functions: all
      .filter((f) => growthOf(f) > 0)
      .sort((x, y) => growthOf(y) - growthOf(x) || (x.name < y.name ? -1 : x.name > y.name ? 1 : 0))
      .slice(0, top),
    shrunk: { functions: shrinking.length, bytes: shrinking.reduce((sum, f) => sum - selfGrowth(f), 0) },
    stacks: stackGrowth(before, after)
      .filter((s) => s.after > s.before)
      .sort((x, y) => y.after - y.before - (x.after - x.before))
      .slice(0, top),
    tree: { ...growthTree(before, after), n: 'heap growth' },
    top,
    sortBy,
  };
}

/** Bytes per minute, or undefined when the snapshots' times are unknown or equal. */
export function perMinute(bytes: number, elapsedMs: number | undefined): number | undefined {
  return elapsedMs !== undefined && elapsedMs > 0 ? (bytes * 60_000) / elapsedMs : undefined;
}
