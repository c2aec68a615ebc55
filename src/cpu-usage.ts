/**
 * Process CPU usage in per mille of the CPU this process can use.
 *
 * Definition (documented in the README): the process's CPU time (user + system, all its
 * threads: `process.cpuUsage()`, getrusage) spent since the previous reading, divided by the wall time
 * since then and by the CPU available to it, clamped to 0..1000. "Available" is one core — a
 * Node.js process runs JavaScript on one thread, so a busy event loop is 1000 ‰ however many
 * cores the machine has — or the container's cgroup CPU quota when that is lower (a pod limited
 * to 0.5 CPU is at 1000 ‰ when it uses half a core). go-zero divides by the quota too.
 *
 * Averaging over the whole check interval (instead of go-zero's ~5 s moving average) means a
 * short spike between two checks neither triggers nor hides a session.
 *
 * The reading is split into the main thread (the event loop's JavaScript) and the other threads
 * (worker threads, GC helpers, libuv's pool), so a session started by busy workers says so.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** A reading of cumulative process CPU time, in milliseconds, at a wall-clock time in milliseconds. */
export interface CpuTimeReading {
  cpuMs: number;
  atMs: number;
}

export type CpuTimeSource = () => Promise<CpuTimeReading>;

/**
 * The process's user + system CPU time, all threads, at a monotonic time. Not pidusage (used
 * before): its reading of /proc (an uptime file, the stat file, on libuv's pool) took 0.48 ms of
 * the main thread per check on Node 24 (bench/window-cost.js), this one a few microseconds.
 */
export const processCpuSource: CpuTimeSource = async () => {
  const usage = process.cpuUsage();
  return { cpuMs: (usage.user + usage.system) / 1000, atMs: performance.now() };
};

/**
 * The CPU quota of this process's cgroup, in cores, or undefined when there is none.
 * cgroup v2: `cpu.max` is "QUOTA PERIOD" or "max PERIOD"; v1: cfs_quota_us / cfs_period_us.
 */
export async function readCgroupCpuQuota(root = '/sys/fs/cgroup'): Promise<number | undefined> {
  const v2 = await readText(`${root}/cpu.max`);
  if (v2 !== undefined) {
    const [quota, period] = v2.trim().split(/\s+/);
    return coresFrom(quota, period);
  }
  const quota = await readText(`${root}/cpu/cpu.cfs_quota_us`);
  const period = await readText(`${root}/cpu/cpu.cfs_period_us`);
  return quota === undefined || period === undefined ? undefined : coresFrom(quota.trim(), period.trim());
}

function coresFrom(quota: string | undefined, period: string | undefined): number | undefined {
  const q = Number(quota);
  const p = Number(period);
  if (!Number.isFinite(q) || !Number.isFinite(p) || q <= 0 || p <= 0) return undefined; // "max" or -1: no limit
  return q / p;
}

/** A procfs file (generated in memory, never on disk: a read does not block on I/O), or undefined. */
function readProcTextSync(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The main thread's own CPU time in ms, or undefined where it cannot be read. */
export type ThreadCpuSource = () => Promise<number | undefined>;

/** Clock ticks per second of /proc's times (USER_HZ: 100 on every Linux architecture Node supports). */
const USER_HZ = 100;

/**
 * `process.threadCpuUsage()` (Node 22.19+ / 23.9+: the calling thread's usage, a few
 * microseconds) where it exists, else the main thread's line in /proc (Linux, Node 20; the main
 * thread's task id is the pid), else none. The /proc file is read synchronously: procfs builds it
 * in memory, without disk, in 5-20 µs, and the reading is of the moment of the call; the read
 * through fs/promises took 290-440 µs of process CPU per check on Node 20 (three round trips
 * to libuv's pool, their promises and async-hook callbacks), 0.08-0.12 ms/s of an idle plugin's
 * own CPU at the default checkInterval (bench/own-cost-steps.js).
 */
export const mainThreadCpuSource: ThreadCpuSource = async () => {
  const threadCpuUsage = (process as { threadCpuUsage?: () => NodeJS.CpuUsage }).threadCpuUsage;
  if (typeof threadCpuUsage === 'function') {
    const { user, system } = threadCpuUsage.call(process);
    return (user + system) / 1000;
  }
  const stat = readProcTextSync(`/proc/self/task/${process.pid}/stat`);
  if (stat === undefined) return undefined;
  // fields after the command name (which may hold spaces and parentheses): state is the first,
  // utime and stime the 12th and 13th
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? (ticks * 1000) / USER_HZ : undefined;
};

/** Per mille of `availableCores` used between two readings, clamped to 0..1000. */
export function usagePerMille(previous: CpuTimeReading, current: CpuTimeReading, availableCores: number): number {
  const wallMs = current.atMs - previous.atMs;
  if (wallMs <= 0 || availableCores <= 0) return 0;
  const perMille = ((current.cpuMs - previous.cpuMs) / wallMs / availableCores) * 1000;
  return Math.max(0, Math.min(1000, Math.round(perMille)));
}

/**
 * Keeps the previous reading and answers "how busy since last time". `measure()` is what the
 * controller calls every check interval; `last` is what `app.profiler.cpuUsage()` returns.
 */
export class CpuUsageMeter {
  private previous: CpuTimeReading | undefined;
  private previousMainMs: number | undefined;
  private availableCores = 1;
  last = 0;
  /** of `last`: the main thread's part and the rest (undefined where the main thread's CPU cannot be read) */
  lastSplit: { mainThread: number; otherThreads: number } | undefined;

  constructor(
    private readonly source: CpuTimeSource = processCpuSource,
    private readonly quota: () => Promise<number | undefined> = () => readCgroupCpuQuota(),
    private readonly mainThread: ThreadCpuSource = mainThreadCpuSource,
  ) {}

  /** Take the baseline reading and learn the quota; a failure leaves the meter at one core. */
  async init(): Promise<void> {
    const cores = await this.quota().catch(() => undefined);
    this.availableCores = cores === undefined ? 1 : Math.min(1, cores);
    await this.baseline();
  }

  get cores(): number {
    return this.availableCores;
  }

  /**
   * A new starting point: the next measure() covers only the time from now. `last` is kept (a
   * reading that would span start-up, module loading and a profiler start is not usage).
   */
  async baseline(): Promise<void> {
    this.previous = await this.source();
    this.previousMainMs = await this.mainThread().catch(() => undefined);
  }

  /** Usage since the previous reading, in per mille (and its split, in lastSplit). */
  async measure(): Promise<number> {
    const current = await this.source();
    const mainMs = await this.mainThread().catch(() => undefined);
    if (this.previous !== undefined) {
      this.last = usagePerMille(this.previous, current, this.availableCores);
      this.lastSplit = this.split(this.previous, current, mainMs);
    }
    this.previous = current;
    this.previousMainMs = mainMs;
    return this.last;
  }

  /** The two parts of `last`: the main thread's (at most all of it) and what the others used. */
  private split(previous: CpuTimeReading, current: CpuTimeReading, mainMs: number | undefined): CpuUsageMeter['lastSplit'] {
    if (mainMs === undefined || this.previousMainMs === undefined) return undefined;
    const main = usagePerMille({ cpuMs: this.previousMainMs, atMs: previous.atMs }, { cpuMs: mainMs, atMs: current.atMs }, this.availableCores);
    const mainThread = Math.min(main, this.last);
    return { mainThread, otherThreads: this.last - mainThread };
  }
}
