/**
 * The file exporter: every profile becomes one gzipped pprof file on disk, so a service without
 * Pyroscope still leaves recordings that `go tool pprof`, speedscope, Pyroscope's upload and this
 * package's `report` command can open.
 *
 *   <dir>/<appName>.<kind>.<window end, UTC>.pid<pid>.pb.gz   e.g. greet.cpu.2026-11-26T07-00-00.123Z.pid4711.pb.gz
 *
 * The pid tells apart the files of several processes writing to one folder (node:cluster
 * workers); they share the folder's bounds. Names without it (written before 0.2) still read.
 *
 * The timestamp has no ':' (it works on every filesystem) and names sort by time. Files are
 * written under a temporary name and renamed, so a reader never sees half a file. The directory
 * is bounded: after each write the oldest of this app's profile files are deleted until at most
 * `maxFiles` files and `maxBytes` bytes remain (counted as `rotated`; that is the bound working,
 * not data lost). Profiles that could not be written are counted as `dropped`.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { LogLimiter } from '../log-limiter';
import type { EncodedProfile, Exporter, ExporterStats, MinimalLogger } from '../types';

export interface FileExporterOptions {
  dir: string;
  appName: string;
  /** at most this many of this app's profile files stay in `dir` (>= 1) */
  maxFiles: number;
  /** at most this many bytes of this app's profile files stay in `dir` (>= 1) */
  maxBytes: number;
  logger: MinimalLogger;
  /** profiles waiting for the disk beyond this are dropped (a hung filesystem must not grow memory) */
  maxPending?: number;
  /** clock for the log rate limit; tests inject one */
  now?: () => number;
}

/**
 * ExporterStats read for files: uploadsOk = files written, bytesSent = bytes written,
 * uploadsFailed = writes that failed, dropped = profiles not written (failed, too large, queue
 * full, after close), pending = profiles waiting for the disk.
 */
export interface FileExporterStats extends ExporterStats {
  /** files deleted to keep the directory within maxFiles / maxBytes */
  rotated: number;
}

export const DEFAULT_MAX_PENDING_FILES = 100;
const PROFILE_FILE_SUFFIX = '.pb.gz';

// ---------------------------------------------------------------------------------------------
// File names

/** A name part safe on every filesystem: app names may contain '/', which would make a folder. */
export function fileSafeAppName(appName: string): string {
  return appName.replace(/[^A-Za-z0-9_.-]/g, '_');
}

/** `2026-11-26T07-00-00.123Z`: ISO 8601 UTC with '-' for ':', so it sorts by time. */
export function fileTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/:/g, '-');
}

/** The file name of one profile; `sequence` > 0 only when that name is already taken. */
export function profileFileName(appName: string, kind: string, endMs: number, sequence = 0, pid = process.pid): string {
  const seq = sequence > 0 ? `-${sequence}` : '';
  return `${fileSafeAppName(appName)}.${kind}.${fileTimestamp(endMs)}${seq}.pid${pid}${PROFILE_FILE_SUFFIX}`;
}

export interface ProfileFileName {
  appName: string;
  kind: string;
  endMs: number;
  sequence: number;
  /** the writing process, undefined in names written before it was part of them */
  pid?: number;
}

// The app part is greedy: app names may contain '.', the kind and timestamp are matched from the end.
const PROFILE_FILE_NAME =
  /^(.+)\.([A-Za-z0-9_]+)\.(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})(\.\d{1,9})?Z(?:-(\d+))?(?:\.pid(\d+))?\.pb\.gz$/;

/** Reads back a name written by `profileFileName`, or undefined for any other file. */
export function parseProfileFileName(fileName: string): ProfileFileName | undefined {
  const m = PROFILE_FILE_NAME.exec(fileName);
  if (!m) return undefined;
  const [, appName, kind, day, hh, mm, ss, fraction, seq, pid] = m;
  const endMs = Date.parse(`${day}T${hh}:${mm}:${ss}${fraction ?? ''}Z`);
  if (Number.isNaN(endMs)) return undefined;
  return { appName: appName!, kind: kind!, endMs, sequence: seq ? Number(seq) : 0, ...(pid === undefined ? {} : { pid: Number(pid) }) };
}

// ---------------------------------------------------------------------------------------------
// Logging without flooding: a full disk fails every window, the log should say so once a minute.

class RateLimitedLog {
  private readonly limiter: LogLimiter;

  constructor(
    private readonly logger: MinimalLogger,
    now: () => number,
  ) {
    this.limiter = new LogLimiter({ now });
  }

  /** Logs at most once a minute per `code` (log-limiter.ts); the next message carries how many were suppressed. */
  error(code: string, obj: Record<string, unknown>, msg: string): void {
    const suppressed = this.limiter.admit(code);
    if (suppressed === undefined) return;
    try {
      this.logger.error(suppressed > 0 ? { ...obj, code, suppressed } : { ...obj, code }, msg);
    } catch {
      // a broken logger must not turn a counted failure into a thrown one
    }
  }
}

function errorCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------------------------
// Rotation

interface ProfileFileOnDisk {
  name: string;
  endMs: number;
  sequence: number;
  size: number;
}

/** Oldest first: by window end, then by the collision sequence, then by name. */
function byAge(a: ProfileFileOnDisk, b: ProfileFileOnDisk): number {
  return a.endMs - b.endMs || a.sequence - b.sequence || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** Which files to delete (oldest first) so that at most maxFiles / maxBytes remain. */
export function filesToRotate<T extends { size: number }>(
  oldestFirst: readonly T[],
  maxFiles: number,
  maxBytes: number,
): T[] {
  let count = oldestFirst.length;
  let bytes = oldestFirst.reduce((sum, f) => sum + f.size, 0);
  const out: T[] = [];
  for (const file of oldestFirst) {
    if (count <= maxFiles && bytes <= maxBytes) break;
    out.push(file);
    count -= 1;
    bytes -= file.size;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

export class FileExporter implements Exporter {
  readonly name = 'file';

  private readonly dir: string;
  private readonly appFilePrefix: string;
  private readonly maxPending: number;
  private readonly log: RateLimitedLog;

  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  /** set when close() gave up waiting: queued profiles not yet started are dropped */
  private abandoned = false;
  private tempCounter = 0;

  private readonly counters = {
    uploadsOk: 0,
    uploadsFailed: 0,
    bytesSent: 0,
    dropped: 0,
    pending: 0,
    rotated: 0,
  };
  private lastError: string | undefined;

  constructor(private readonly options: FileExporterOptions) {
    requireWholeNumber('maxOutputFiles', options.maxFiles);
    requireWholeNumber('maxOutputBytes', options.maxBytes);
    this.dir = path.resolve(options.dir);
    this.appFilePrefix = `${fileSafeAppName(options.appName)}.`;
    this.maxPending = options.maxPending ?? DEFAULT_MAX_PENDING_FILES;
    this.log = new RateLimitedLog(options.logger, options.now ?? (() => Date.now()));
  }

  export(profiles: readonly EncodedProfile[]): Promise<void> {
    const accepted: EncodedProfile[] = [];
    for (const profile of profiles) {
      if (this.closed) {
        this.drop('EXPORTER_CLOSED', 'profile arrived after close(); not written', profile);
      } else if (this.counters.pending >= this.maxPending) {
        this.drop('QUEUE_FULL', `more than ${this.maxPending} profiles waiting for the disk; profile dropped`, profile);
      } else {
        this.counters.pending += 1;
        accepted.push(profile);
      }
    }
    if (accepted.length === 0) return Promise.resolve();
    // One write at a time: rotation then always sees the files written before it.
    const done = this.queue.then(() => this.writeAll(accepted)).catch((err: unknown) => {
      this.recordError('EUNEXPECTED', `file exporter failed: ${errorMessage(err)}`);
    });
    this.queue = done;
    return done;
  }

  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(0, timeoutMs));
      timer.unref();
    });
    const outcome = await Promise.race([this.queue.then(() => 'done' as const), deadline]);
    clearTimeout(timer);
    if (outcome === 'timeout') this.abandoned = true;
  }

  stats(): FileExporterStats {
    return { ...this.counters, ...(this.lastError !== undefined ? { lastError: this.lastError } : {}) };
  }

  /** Never rejects: every failure is counted and logged. */
  private async writeAll(profiles: readonly EncodedProfile[]): Promise<void> {
    let wroteAny = false;
    for (const profile of profiles) {
      this.counters.pending -= 1;
      if (this.abandoned) {
        this.drop('CLOSE_DEADLINE', 'close() deadline passed before this profile was written', profile);
        continue;
      }
      wroteAny = (await this.writeOne(profile)) || wroteAny;
    }
    if (wroteAny) await this.rotate();
  }

  private async writeOne(profile: EncodedProfile): Promise<boolean> {
    if (profile.body.length > this.options.maxBytes) {
      // Writing it would only delete it again (or everything else): refuse up front.
      this.drop(
        'PROFILE_TOO_LARGE',
        `profile of ${profile.body.length} bytes is larger than maxOutputBytes (${this.options.maxBytes}); not written`,
        profile,
      );
      return false;
    }
    let tempPath: string | undefined;
    try {
      await fsp.mkdir(this.dir, { recursive: true });
      const finalPath = await freeFileName(this.dir, this.options.appName, profile);
      // Hidden and not ending in .pb.gz: neither rotation nor the report ever reads a temp file.
      tempPath = path.join(this.dir, `.${path.basename(finalPath)}.${process.pid}.${this.tempCounter++}.tmp`);
      await fsp.writeFile(tempPath, profile.body, { flag: 'wx' });
      await fsp.rename(tempPath, finalPath);
      tempPath = undefined;
      this.counters.uploadsOk += 1;
      this.counters.bytesSent += profile.body.length;
      return true;
    } catch (err) {
      this.counters.uploadsFailed += 1;
      this.drop(errorCode(err), `could not write profile to ${this.dir}: ${errorMessage(err)}`, profile);
      if (tempPath !== undefined) await fsp.rm(tempPath, { force: true }).catch(() => undefined);
      return false;
    }
  }

  private async rotate(): Promise<void> {
    try {
      const files = await listOwnProfileFiles(this.dir, this.appFilePrefix);
      for (const file of filesToRotate(files, this.options.maxFiles, this.options.maxBytes)) {
        await this.deleteRotated(file.name);
      }
    } catch (err) {
      this.recordError(errorCode(err), `could not list ${this.dir} to rotate profile files: ${errorMessage(err)}`);
    }
  }

  private async deleteRotated(name: string): Promise<void> {
    try {
      await fsp.unlink(path.join(this.dir, name));
      this.counters.rotated += 1;
    } catch (err) {
      // Another process sharing the directory may have rotated it first.
      if (errorCode(err) === 'ENOENT') return;
      this.recordError(errorCode(err), `could not delete old profile file ${name}: ${errorMessage(err)}`);
    }
  }

  private drop(code: string, message: string, profile: EncodedProfile): void {
    this.counters.dropped += 1;
    this.recordError(code, message, { kind: profile.kind, endMs: profile.endMs });
  }

  private recordError(code: string, message: string, extra: Record<string, unknown> = {}): void {
    this.lastError = `${code}: ${message}`;
    this.log.error(code, { exporter: this.name, dir: this.dir, ...extra }, message);
  }
}

/** Two windows ending in the same millisecond (e.g. cluster workers) must not overwrite each other. */
async function freeFileName(dir: string, appName: string, profile: EncodedProfile): Promise<string> {
  for (let sequence = 0; ; sequence += 1) {
    const candidate = path.join(dir, profileFileName(appName, profile.kind, profile.endMs, sequence));
    if (!(await exists(candidate))) return candidate;
  }
}

/** This app's profile files only (`appFilePrefix`: its file-safe name and a dot), oldest first: other apps (and any other file) sharing the dir are left alone. */
async function listOwnProfileFiles(dir: string, appFilePrefix: string): Promise<ProfileFileOnDisk[]> {
  const names = await fsp.readdir(dir);
  const own: ProfileFileOnDisk[] = [];
  await Promise.all(
    names.map(async (name) => {
      if (!name.startsWith(appFilePrefix)) return;
      const parsed = parseProfileFileName(name);
      if (!parsed || fileSafeAppName(parsed.appName) !== appFilePrefix.slice(0, -1)) return;
      const size = await fileSize(path.join(dir, name));
      if (size !== undefined) own.push({ name, endMs: parsed.endMs, sequence: parsed.sequence, size });
    }),
  );
  return own.sort(byAge);
}

/** A programming error (options are validated before): fail at construction, naming the option. */
function requireWholeNumber(option: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${option} must be a whole number >= 1, got ${String(value)}`);
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}

async function fileSize(p: string): Promise<number | undefined> {
  try {
    return (await fsp.stat(p)).size;
  } catch {
    return undefined; // deleted meanwhile by another process
  }
}
