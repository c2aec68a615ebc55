import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuUsageMeter, mainThreadCpuSource, readCgroupCpuQuota, usagePerMille, type CpuTimeReading } from '../src/cpu-usage';

function cgroupRoot(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'fcp-cgroup-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

describe('usagePerMille', () => {
  const at = (cpuMs: number, atMs: number): CpuTimeReading => ({ cpuMs, atMs });

  it('is CPU time over wall time per available core, in per mille', () => {
    expect(usagePerMille(at(0, 0), at(500, 1000), 1)).toBe(500);
    expect(usagePerMille(at(0, 0), at(250, 1000), 0.5)).toBe(500);
    expect(usagePerMille(at(1000, 10_000), at(8000, 20_000), 1)).toBe(700);
  });

  it('clamps to 0..1000 (GC threads can push a process over one core)', () => {
    expect(usagePerMille(at(0, 0), at(1500, 1000), 1)).toBe(1000);
    expect(usagePerMille(at(100, 0), at(50, 1000), 1)).toBe(0);
  });

  it('reads 0 when no time passed', () => {
    expect(usagePerMille(at(0, 1000), at(10, 1000), 1)).toBe(0);
  });
});

describe('readCgroupCpuQuota', () => {
  it('reads a cgroup v2 quota', async () => {
    expect(await readCgroupCpuQuota(cgroupRoot({ 'cpu.max': '50000 100000\n' }))).toBe(0.5);
  });

  it('reads "max" as no limit', async () => {
    expect(await readCgroupCpuQuota(cgroupRoot({ 'cpu.max': 'max 100000\n' }))).toBeUndefined();
  });

  it('reads a cgroup v1 quota, and -1 as no limit', async () => {
    expect(await readCgroupCpuQuota(cgroupRoot({ 'cpu/cpu.cfs_quota_us': '150000\n', 'cpu/cpu.cfs_period_us': '100000\n' }))).toBe(1.5);
    expect(await readCgroupCpuQuota(cgroupRoot({ 'cpu/cpu.cfs_quota_us': '-1\n', 'cpu/cpu.cfs_period_us': '100000\n' }))).toBeUndefined();
  });

  it('is undefined without cgroup files (not Linux, or not mounted)', async () => {
    expect(await readCgroupCpuQuota(cgroupRoot({}))).toBeUndefined();
  });
});

describe('CpuUsageMeter', () => {
  it('measures each interval against the previous reading, using the lower of one core and the quota', async () => {
    const readings = [at(0, 0), at(300, 1000), at(300, 2000)];
    const meter = new CpuUsageMeter(async () => readings.shift()!, async () => 0.5);
    await meter.init();
    expect(meter.cores).toBe(0.5);
    expect(await meter.measure()).toBe(600);
    expect(meter.last).toBe(600);
    expect(await meter.measure()).toBe(0);
  });

  it('divides by one core when the quota is larger or absent', async () => {
    const meter = new CpuUsageMeter(async () => at(0, 0), async () => 4);
    await meter.init();
    expect(meter.cores).toBe(1);
    const none = new CpuUsageMeter(async () => at(0, 0), async () => undefined);
    await none.init();
    expect(none.cores).toBe(1);
  });

  it('measures this process (process.cpuUsage) by default', async () => {
    const meter = new CpuUsageMeter();
    await meter.init();
    const end = Date.now() + 300;
    let x = 0;
    while (Date.now() < end) x = (x + 1) % 1_000_003;
    const usage = await meter.measure();
    expect(x).toBeGreaterThanOrEqual(0);
    expect(usage).toBeGreaterThan(0); // busy the whole interval; how busy depends on the machine
    expect(usage).toBeLessThanOrEqual(1000);
  });

  it('splits a reading into the main thread and the other threads', async () => {
    // process: 600 ms over 1 s; main thread: 200 ms of it
    const process = [at(0, 0), at(600, 1000)];
    const main = [0, 200];
    const split = new CpuUsageMeter(async () => process.shift()!, async () => 1, async () => main.shift());
    await split.init();
    expect(await split.measure()).toBe(600);
    expect(split.lastSplit).toEqual({ mainThread: 200, otherThreads: 400 });
    const unreadable = new CpuUsageMeter(async () => process.shift() ?? at(0, 0), async () => 1, async () => undefined);
    await unreadable.init();
    await unreadable.measure();
    expect(unreadable.lastSplit).toBeUndefined();
  });

  it('reads the main thread at the moment of the call, not after a trip through the thread pool (Node 20: /proc read synchronously)', async () => {
    const before = await mainThreadCpuSource();
    const reading = mainThreadCpuSource();
    // 300 ms of CPU on this thread (counted, not timed: a loaded machine gives less CPU per wall
    // second) before the promise can settle: an asynchronous read would only reach the file
    // afterwards (its open, stat and read callbacks need this thread) and see it
    const cpuMs = (): number => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    const end = cpuMs() + 300;
    let x = 0;
    while (cpuMs() < end) x = (x + 1) % 1_000_003;
    const atCall = await reading;
    const after = await mainThreadCpuSource();
    expect(x).toBeGreaterThanOrEqual(0);
    expect(after! - before!).toBeGreaterThanOrEqual(150);
    expect(atCall! - before!).toBeLessThan(100);
  });

  it(`reads the main thread's own CPU time (Node ${process.version}: ${'threadCpuUsage' in process ? 'process.threadCpuUsage' : '/proc'})`, async () => {
    const before = await mainThreadCpuSource();
    const end = Date.now() + 200;
    let x = 0;
    while (Date.now() < end) x = (x + 1) % 1_000_003;
    const after = await mainThreadCpuSource();
    expect(x).toBeGreaterThanOrEqual(0);
    expect(typeof before).toBe('number');
    expect(after!).toBeGreaterThan(before!);
    // never more than the whole process's CPU time
    const total = process.cpuUsage();
    expect(after!).toBeLessThanOrEqual((total.user + total.system) / 1000 + 20);
  });

  function at(cpuMs: number, atMs: number): CpuTimeReading {
    return { cpuMs, atMs };
  }
});
