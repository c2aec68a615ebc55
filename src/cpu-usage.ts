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
 */
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

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

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
  private availableCores = 1;
  last = 0;

  constructor(
    private readonly source: CpuTimeSource = processCpuSource,
    private readonly quota: () => Promise<number | undefined> = () => readCgroupCpuQuota(),
  ) {}

  /** Take the baseline reading and learn the quota; a failure leaves the meter at one core. */
  async init(): Promise<void> {
    const cores = await this.quota().catch(() => undefined);
    this.availableCores = cores === undefined ? 1 : Math.min(1, cores);
    this.previous = await this.source();
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
  }

  /** Usage since the previous reading, in per mille. */
  async measure(): Promise<number> {
    const current = await this.source();
    if (this.previous !== undefined) this.last = usagePerMille(this.previous, current, this.availableCores);
    this.previous = current;
    return this.last;
  }
}
