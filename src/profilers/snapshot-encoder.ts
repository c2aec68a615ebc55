/**
 * The encoding of push windows' heap profiles, with the previous window's work kept: a heap
 * profile is a snapshot of what is live (Pyroscope stores each upload as the state at its time,
 * so every window must carry one), and in a process that did not allocate anything that stays
 * live, the engine hands out the same profile window after window, but for its `(external)`
 * sample. When it does, the previous window's rewritten and protobuf-encoded bytes are sent again,
 * followed by this window's `(external)` sample and interval (protobuf appends repeated fields
 * and reads fields in any order, so the upload decodes to what a fresh encoding gives); only the
 * gzip runs again (on libuv's pool). Nothing is skipped or dropped.
 *
 * How often it helps, measured on Node 24 (bench/window-cost.js, bench/heap-window-cost.js): 11 of
 * 30 idle windows at uploadRate 1s, 1 of 6 at 15s, 0 of 6 with a 100 MB AST live. The heap sampler
 * also sees the objects a window's own work allocates (the engine's profile objects, buffers) as
 * live until the next GC, so a snapshot rarely repeats exactly; when it does, a window saves the
 * rewrite and the encoding (3.4 ms of the main thread with that AST live).
 *
 * A rewrite that is not final (a source-map lookup timed out: those frames go compiled this time
 * only, FrameRewriter.rewrite) is not kept, so the next window maps them.
 */
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { emptyTableToken, Profile, StringTable, type Function as PprofFunction, type Label, type Line, type Location, type Sample, type ValueType } from 'pprof-format';
import type { FrameRewriter } from './frames';

const gzipAsync = promisify(gzip);

/** What the engine's profile said before it was rewritten (rewrite replaces these arrays, never changes them). */
interface ProfileContents {
  sampleLocations: Profile['sample'][number]['locationId'][];
  sampleValues: Profile['sample'][number]['value'][];
  sampleLabels: Label[][];
  location: Location[];
  function: PprofFunction[];
  mapping: Profile['mapping'];
  strings: string[];
  sampleType: ValueType[];
  periodType?: ValueType;
  scalars: unknown[];
}

export class SnapshotEncoder {
  private last?: { contents: ProfileContents; encoded: Uint8Array };
  /** windows that sent the previous window's encoding again */
  reused = 0;

  constructor(private readonly frames: FrameRewriter | undefined) {}

  /** The gzipped pprof of `profile` for the window [startMs, startMs + durationMs); `profile` may be rewritten in place. */
  async encode(profile: Profile, startMs: number, durationMs: number): Promise<Buffer> {
    const all = profile.sample;
    const external = all.filter(isExternalSample(profile));
    profile.sample = all.filter((s) => !external.includes(s));
    let encoded: Uint8Array;
    try {
      encoded = await this.encodeLive(profile);
    } finally {
      profile.sample = all;
    }
    // the samples that change every window, and the interval: protobuf appends repeated fields
    const tail = new Profile({
      sample: external,
      stringTable: new StringTable(emptyTableToken),
      timeNanos: startMs * 1_000_000,
      durationNanos: Math.max(0, durationMs) * 1_000_000,
    }).encode();
    return gzipAsync(Buffer.concat([encoded, tail]));
  }

  /** The encoding of the live allocations (no interval): the previous one when they did not change. */
  private async encodeLive(profile: Profile): Promise<Uint8Array> {
    if (this.last !== undefined && sameContents(this.last.contents, profile)) {
      this.reused++;
      return this.last.encoded;
    }
    this.last = undefined;
    const contents = contentsOf(profile);
    profile.timeNanos = 0;
    profile.durationNanos = 0;
    const final = (await this.frames?.rewrite(profile)) ?? true;
    const encoded = await profile.encodeAsync();
    if (final) this.last = { contents, encoded };
    return encoded;
  }
}

/**
 * The engine adds one sample to every heap profile: `(external)`, the process's external memory
 * (Buffers, sockets) at that moment, which changes by a few bytes every window. It is encoded
 * apart, each time; its location and function stay in the cached part (rewrite keeps ids).
 */
function isExternalSample(profile: Profile): (sample: Sample) => boolean {
  const strings = profile.stringTable.strings;
  const functions = new Set(profile.function.filter((f) => strings[Number(f.name)] === EXTERNAL && strings[Number(f.filename)] === '').map((f) => Number(f.id)));
  const locations = new Set(profile.location.filter((l) => l.line.length === 1 && functions.has(Number(l.line[0].functionId))).map((l) => Number(l.id)));
  return (sample) => sample.locationId.length === 1 && sample.label.length === 0 && locations.has(Number(sample.locationId[0]));
}

const EXTERNAL = '(external)';

function contentsOf(p: Profile): ProfileContents {
  return {
    sampleLocations: p.sample.map((s) => s.locationId),
    sampleValues: p.sample.map((s) => s.value),
    sampleLabels: p.sample.map((s) => s.label),
    location: p.location,
    function: p.function,
    mapping: p.mapping,
    strings: p.stringTable.strings,
    sampleType: p.sampleType,
    periodType: p.periodType,
    scalars: scalarsOf(p),
  };
}

function scalarsOf(p: Profile): unknown[] {
  return [p.period, p.dropFrames, p.keepFrames, p.defaultSampleType, p.docUrl, ...p.comment].map(Number);
}

/** Everything the encoding depends on but the interval, compared field by field (no hash: no collision). */
function sameContents(c: ProfileContents, p: Profile): boolean {
  if (c.sampleLocations.length !== p.sample.length || c.location.length !== p.location.length || c.function.length !== p.function.length) return false;
  if (!sameList(c.strings, p.stringTable.strings, (a, b) => a === b)) return false;
  if (!sameList(c.scalars, scalarsOf(p), (a, b) => a === b)) return false;
  if (!sameList(c.sampleType, p.sampleType, sameValueType) || !sameOptional(c.periodType, p.periodType, sameValueType)) return false;
  for (let i = 0; i < p.sample.length; i++) {
    const s = p.sample[i];
    if (!sameList(c.sampleLocations[i], s.locationId, same) || !sameList(c.sampleValues[i], s.value, same)) return false;
    if (!sameList(c.sampleLabels[i], s.label, sameLabel)) return false;
  }
  if (!sameList(c.location, p.location, sameLocation)) return false;
  if (!sameList(c.function, p.function, sameFunction)) return false;
  return sameList(c.mapping, p.mapping, (a, b) => JSON.stringify(a, bigints) === JSON.stringify(b, bigints));
}

function sameLocation(a: Location, b: Location): boolean {
  return same(a.id, b.id) && same(a.mappingId, b.mappingId) && same(a.address, b.address) && a.isFolded === b.isFolded && sameList(a.line, b.line, sameLine);
}

function sameLine(a: Line, b: Line): boolean {
  return same(a.functionId, b.functionId) && same(a.line, b.line) && same(a.column, b.column);
}

function sameFunction(a: PprofFunction, b: PprofFunction): boolean {
  return same(a.id, b.id) && same(a.name, b.name) && same(a.systemName, b.systemName) && same(a.filename, b.filename) && same(a.startLine, b.startLine);
}

function sameLabel(a: Label, b: Label): boolean {
  return same(a.key, b.key) && same(a.str, b.str) && same(a.num, b.num) && same(a.numUnit, b.numUnit);
}

function sameValueType(a: ValueType, b: ValueType): boolean {
  return same(a.type, b.type) && same(a.unit, b.unit);
}

function sameOptional<T>(a: T | undefined, b: T | undefined, equal: (x: T, y: T) => boolean): boolean {
  return a === undefined || b === undefined ? a === b : equal(a, b);
}

/** The engine gives numbers, pprof-format may hold bigints: `==` compares the two exactly. */
function same(a: number | bigint, b: number | bigint): boolean {
  return a == b;
}

function sameList<T>(a: readonly T[], b: readonly T[], equal: (x: T, y: T) => boolean): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!equal(a[i], b[i])) return false;
  return true;
}

function bigints(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
