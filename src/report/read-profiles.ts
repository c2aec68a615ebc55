/**
 * Reads profile files (as the file exporter writes them, or any pprof file) into a report:
 * the names choose the files (the CPU profiles), the contents the sample type (cpu, else wall,
 * else samples).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { parseProfileFileName, type ProfileFileName } from '../exporters/file';
import { ReportBuilder, type BuilderOptions, type BuildOptions, type ReportData, type SkippedProfile } from './aggregate';
import { buildGrowthReport, type GrowthOptions, type GrowthReport } from './growth';
import { buildHeapReport, HeapSnapshots, isHeapProfile, snapshotTimeMs } from './heap-input';
import { checkPprofWireFormat } from './wire-check';

/** What the report reads: time profiles (CPU, else wall), or heap snapshots. */
export type ReportType = 'cpu' | 'heap';

export interface LoadOptions extends BuildOptions, BuilderOptions {
  /** undefined: heap when the input holds only heap profiles, else cpu */
  type?: ReportType;
}

/** A problem with the report's input the user must fix (missing directory, no profiles). */
export class ReportInputError extends Error {
  override name = 'ReportInputError';
}

const PROFILE_EXTENSIONS = ['.pb.gz', '.pprof', '.pb'];

function isProfileFileName(name: string): boolean {
  // Hidden files include the exporter's temporary files.
  return !name.startsWith('.') && PROFILE_EXTENSIONS.some((ext) => name.endsWith(ext));
}

/** Profile files named by `inputs`: directories are listed (not recursively), files taken as given. */
export async function listProfileFiles(inputs: readonly string[]): Promise<string[]> {
  if (inputs.length === 0) throw new ReportInputError('no input: give a directory of *.pb.gz profile files');
  const files: string[] = [];
  for (const input of inputs) {
    let stat;
    try {
      stat = await fsp.stat(input);
    } catch {
      throw new ReportInputError(`${input}: no such file or directory (expected a directory of *.pb.gz profile files)`);
    }
    if (stat.isDirectory()) {
      const names = (await fsp.readdir(input)).filter(isProfileFileName).sort();
      files.push(...names.map((name) => path.join(input, name)));
    } else {
      files.push(input);
    }
  }
  return files;
}

/**
 * The largest profile read, on disk and decompressed. Pyroscope refuses profiles over 4 MiB
 * decompressed and the file exporter writes what it would accept; 64 MiB leaves room for other
 * tools' files while a hostile gzip bomb or a runaway file cannot exhaust memory.
 */
export const MAX_PROFILE_BYTES = 64 * 1024 * 1024;

/**
 * Decodes a pprof file's bytes, gzipped (as written by the exporter) or not. The wire structure
 * is checked first (linear time), so a corrupt or hostile file is refused at once instead of
 * making the decoder spin; throws an error saying what is wrong.
 */
export function decodeProfile(bytes: Uint8Array): Profile {
  const gzipped = bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
  let raw: Uint8Array = bytes;
  if (gzipped) {
    try {
      raw = gunzipSync(bytes, { maxOutputLength: MAX_PROFILE_BYTES });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ERR_BUFFER_TOO_LARGE') throw new Error(`more than ${MAX_PROFILE_BYTES} bytes once decompressed`);
      throw new Error(`not a complete gzip stream (${error instanceof Error ? error.message : String(error)})`);
    }
  }
  checkPprofWireFormat(raw);
  return Profile.decode(raw);
}

export async function readProfileFile(file: string): Promise<Profile> {
  const { size } = await fsp.stat(file);
  if (size > MAX_PROFILE_BYTES) throw new Error(`${size} bytes, more than the ${MAX_PROFILE_BYTES} bytes a profile may have`);
  return decodeProfile(await fsp.readFile(file));
}

interface NamedFile {
  file: string;
  name: ProfileFileName | undefined;
}

/** Which profile kind carries the report's sample type, best first (heap never does). */
const KIND_PREFERENCE = ['cpu', 'wall'];

export interface FileSelection {
  use: NamedFile[];
  skipped: SkippedProfile[];
}

/**
 * Which files to read. When the exporter's names say which files are the CPU profiles, only
 * those (a wall profile may carry CPU time too and must not be counted twice; heap profiles
 * have none); else the wall profiles. Files with other names are read and judged by content.
 */
export function selectFiles(files: readonly string[], type?: ReportType): FileSelection {
  const named = files.map((file) => ({ file, name: parseProfileFileName(path.basename(file)) }));
  const kinds = new Set(named.map((n) => n.name?.kind));
  const kind = type === 'heap' ? 'heap' : KIND_PREFERENCE.find((k) => kinds.has(k));
  const use: NamedFile[] = [];
  const skipped: SkippedProfile[] = [];
  for (const n of named) {
    if (kind !== undefined && n.name && n.name.kind !== kind) {
      skipped.push({ source: n.file, reason: `a ${n.name.kind} profile; the report reads the ${kind} profiles` });
    } else {
      use.push(n);
    }
  }
  return { use, skipped };
}

function unreadableReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'deleted while the report ran (rotated by the exporter?)';
  return `not a readable pprof profile: ${err instanceof Error ? err.message : String(err)}`;
}

/** Lists `inputs` and fails when they hold no profile file at all. */
async function listInputFiles(inputs: readonly string[]): Promise<string[]> {
  const files = await listProfileFiles(inputs);
  if (files.length === 0) {
    throw new ReportInputError(`${inputs.join(', ')}: no profile files (*.pb.gz) found; is this the plugin's outputDir?`);
  }
  return files;
}

/** Decodes each file in turn (one in memory at a time); a file that cannot be read is skipped, with the reason. */
async function readEach(
  files: readonly NamedFile[],
  skipped: SkippedProfile[],
  use: (profile: Profile, named: NamedFile, order: number) => void,
): Promise<void> {
  for (const [order, named] of files.entries()) {
    let profile: Profile;
    try {
      profile = await readProfileFile(named.file);
    } catch (err) {
      skipped.push({ source: named.file, reason: unreadableReason(err) });
      continue;
    }
    use(profile, named, order);
  }
}

function sortSkipped(skipped: SkippedProfile[]): SkippedProfile[] {
  return skipped.sort((a, b) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
}

function noneUsable(inputs: readonly string[], files: number, skipped: readonly SkippedProfile[]): ReportInputError {
  const why = skipped.slice(0, 3).map((s) => `  ${s.source}: ${s.reason}`).join('\n');
  return new ReportInputError(`${inputs.join(', ')}: none of the ${files} profile files could be used:\n${why}`);
}

/**
 * The report of the profile files in `inputs` (directories or files). Each file is decoded once
 * and only its call trees are kept, so memory holds one decoded profile at a time (two heap
 * snapshots at most: the earliest and the latest).
 * Throws ReportInputError when an input is missing or no file holds a usable profile.
 */
export async function loadReport(inputs: readonly string[], options: LoadOptions = {}): Promise<ReportData> {
  const files = await listInputFiles(inputs);
  const selection = selectFiles(files, options.type);
  const skipped = [...selection.skipped];
  const builder = new ReportBuilder(process.cwd(), options.spanIds === undefined ? {} : { spanIds: options.spanIds });
  const heaps = new HeapSnapshots();
  await readEach(selection.use, skipped, (profile, { file, name }, order) => {
    if (options.type !== 'cpu' && isHeapProfile(profile)) {
      heaps.offer({ profile, source: file, appName: name?.appName, timeMs: snapshotTimeMs(profile, name?.endMs), order });
    } else if (options.type === 'heap') {
      skipped.push({ source: file, reason: 'not a heap profile (no inuse_space sample type); --type heap reads heap profiles' });
    } else {
      builder.add(profile, file, name?.appName);
    }
  });
  let report = builder.build(options);
  if (heaps.latest && (options.type === 'heap' || report.profileCount === 0)) {
    report = heapReport(heaps, report, options);
  } else {
    const why = 'a heap profile; the report reads the time profiles here (--type heap for the heap)';
    skipped.push(...heaps.sources.map((source) => ({ source, reason: why })));
  }
  skipped.push(...report.skipped);
  if (report.profileCount === 0) throw noneUsable(inputs, files.length, sortSkipped(skipped));
  return { ...report, skipped: sortSkipped(skipped) };
}

export interface GrowthLoadOptions extends GrowthOptions {
  /** only snapshots taken at or after this time (unix ms) */
  fromMs?: number;
  /** only snapshots taken at or before this time (unix ms) */
  toMs?: number;
}

/**
 * `report --growth`: the heap snapshots of `inputs` (within the time range, when given), and
 * what grew from the earliest to the latest. Needs two snapshots; the others are listed as
 * not used. Throws ReportInputError when there are fewer.
 */
export async function loadGrowthReport(inputs: readonly string[], options: GrowthLoadOptions = {}): Promise<GrowthReport & { skipped: SkippedProfile[] }> {
  const files = await listInputFiles(inputs);
  const selection = selectFiles(files, 'heap');
  const skipped = [...selection.skipped];
  const heaps = new HeapSnapshots();
  const ranged = options.fromMs !== undefined || options.toMs !== undefined;
  await readEach(selection.use, skipped, (profile, { file, name }, order) => {
    if (!isHeapProfile(profile)) {
      skipped.push({ source: file, reason: 'not a heap profile (no inuse_space sample type); --growth compares heap profiles' });
      return;
    }
    const timeMs = snapshotTimeMs(profile, name?.endMs);
    if (ranged && timeMs === undefined) {
      skipped.push({ source: file, reason: 'says nowhere when it was taken (no time_nanos, no time in its name), so it cannot be placed in --from/--to' });
    } else if (ranged && ((options.fromMs !== undefined && timeMs! < options.fromMs) || (options.toMs !== undefined && timeMs! > options.toMs))) {
      skipped.push({ source: file, reason: 'taken outside --from/--to' });
    } else {
      heaps.offer({ profile, source: file, appName: name?.appName, timeMs, order });
    }
  });
  const { earliest, latest } = heaps;
  if (!earliest || !latest || heaps.count < 2) {
    const found = `${heaps.count} heap snapshot${heaps.count === 1 ? '' : 's'}${ranged ? ' in the time range' : ''}`;
    const why = sortSkipped(skipped).slice(0, 3).map((s) => `\n  ${s.source}: ${s.reason}`).join('');
    throw new ReportInputError(`${inputs.join(', ')}: --growth compares two heap snapshots or more; found ${found}${why}`);
  }
  const between = 'a heap snapshot between the earliest and the latest: --growth compares those two';
  skipped.push(...heaps.sources.filter((s) => s !== earliest.source && s !== latest.source).map((source) => ({ source, reason: between })));
  return { ...buildGrowthReport(earliest, latest, heaps.count, options), skipped: sortSkipped(skipped) };
}

/**
 * The latest snapshot's report. Listed as not used: the earlier snapshots, and the time profiles
 * the builder could not use (with --type heap none reaches it; they are skipped while reading).
 */
function heapReport(heaps: HeapSnapshots, timeReport: ReportData, options: LoadOptions): ReportData {
  const latest = heaps.latest!;
  const report = buildHeapReport(latest, heaps.count - 1, options);
  const earlier = 'an earlier heap snapshot: in-use memory is a state, the report shows the latest';
  const notLatest = heaps.sources.filter((s) => s !== latest.source).map((source) => ({ source, reason: earlier }));
  return { ...report, skipped: [...report.skipped, ...notLatest, ...timeReport.skipped] };
}
