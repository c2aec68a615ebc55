import { promises as fsp } from 'node:fs';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import {
  FileExporter,
  filesToRotate,
  parseProfileFileName,
  profileFileName,
  type FileExporterOptions,
} from '../src/exporters/file';
import type { EncodedProfile, MinimalLogger } from '../src/types';
import { CPU_TYPES, encodedProfile, MS, WALL_TYPES } from './fixtures/report-profiles';

const T0 = Date.UTC(2026, 10, 26, 7, 0, 0, 123);

function recordingLogger(): MinimalLogger & { errors: { obj: Record<string, unknown>; msg?: string }[] } {
  const errors: { obj: Record<string, unknown>; msg?: string }[] = [];
  return {
    errors,
    info: () => undefined,
    warn: () => undefined,
    debug: () => undefined,
    error: (obj, msg) => errors.push({ obj: obj as Record<string, unknown>, ...(msg !== undefined ? { msg } : {}) }),
  };
}

function cpuProfile(startMs: number, route = '/ping', cpuMs = 30): EncodedProfile {
  return encodedProfile('cpu', {
    sampleTypes: CPU_TYPES,
    timeMs: startMs,
    durationMs: 15_000,
    samples: [
      { stack: ['main@/app/main.ts:1', 'simulateCPULoad@/app/logic.ts:3'], labels: { route, method: 'GET' }, values: [cpuMs / 10, cpuMs * MS] },
    ],
  });
}

function wallProfile(startMs: number): EncodedProfile {
  return encodedProfile('wall', {
    sampleTypes: WALL_TYPES,
    timeMs: startMs,
    durationMs: 15_000,
    samples: [{ stack: ['main@/app/main.ts:1'], labels: { route: '/ping' }, values: [3, 30 * MS] }],
  });
}

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'fcp-file-exporter-'));
});
afterEach(async () => {
  jest.restoreAllMocks();
  await fsp.rm(dir, { recursive: true, force: true });
});

function exporter(overrides: Partial<FileExporterOptions> = {}): FileExporter {
  return new FileExporter({ dir, appName: 'greet', maxFiles: 100, maxBytes: 10 * 1024 * 1024, logger: recordingLogger(), ...overrides });
}

async function listDir(d = dir): Promise<string[]> {
  return (await fsp.readdir(d)).sort();
}

describe('file names', () => {
  it('say the app, the kind, the window end in UTC without ":", and the writing process', () => {
    expect(profileFileName('greet', 'cpu', T0, 0, 4711)).toBe('greet.cpu.2026-11-26T07-00-00.123Z.pid4711.pb.gz');
    expect(profileFileName('greet', 'heap', T0, 2, 4711)).toBe('greet.heap.2026-11-26T07-00-00.123Z-2.pid4711.pb.gz');
    expect(profileFileName('greet', 'cpu', T0)).toBe(`greet.cpu.2026-11-26T07-00-00.123Z.pid${process.pid}.pb.gz`);
  });

  it('replace characters a file name cannot hold (app names may contain "/")', () => {
    expect(profileFileName('team/greet', 'cpu', T0, 0, 1)).toBe('team_greet.cpu.2026-11-26T07-00-00.123Z.pid1.pb.gz');
  });

  it('read back into app, kind, time and pid, also for app names with dots and names written without a pid', () => {
    expect(parseProfileFileName('my.app.v2.wall.2026-11-26T07-00-00.123Z-3.pid4711.pb.gz')).toEqual({
      appName: 'my.app.v2',
      kind: 'wall',
      endMs: T0,
      sequence: 3,
      pid: 4711,
    });
    expect(parseProfileFileName('my.app.v2.wall.2026-11-26T07-00-00.123Z-3.pb.gz')).toEqual({
      appName: 'my.app.v2',
      kind: 'wall',
      endMs: T0,
      sequence: 3,
    });
    expect(parseProfileFileName('notes.txt')).toBeUndefined();
    expect(parseProfileFileName('.greet.cpu.2026-11-26T07-00-00.123Z.pb.gz.1.0.tmp')).toBeUndefined();
  });

  it('sort by time as plain strings', () => {
    const times = [T0 + 10 * 3600_000, T0, T0 + 1, T0 + 59_999, T0 + 86_400_000 * 40];
    const names = times.map((t) => profileFileName('greet', 'cpu', t));
    const sortedByName = [...names].sort();
    expect(sortedByName.map((n) => parseProfileFileName(n)!.endMs)).toEqual([...times].sort((a, b) => a - b));
  });
});

describe('FileExporter writes', () => {
  it('one file per profile, named by kind and window end, creating the directory', async () => {
    const out = path.join(dir, 'nested', 'profiles');
    const e = exporter({ dir: out });
    const cpu = cpuProfile(T0);
    const wall = wallProfile(T0);
    await e.export([cpu, wall]);

    expect(await listDir(out)).toEqual([
      profileFileName('greet', 'cpu', cpu.endMs),
      profileFileName('greet', 'wall', wall.endMs),
    ]);
    expect(e.stats()).toMatchObject({ uploadsOk: 2, uploadsFailed: 0, dropped: 0, pending: 0, rotated: 0 });
    expect(e.stats().bytesSent).toBe(cpu.body.length + wall.body.length);
  });

  it('the body unchanged: the file decodes to the same samples with their route labels', async () => {
    const e = exporter();
    const cpu = cpuProfile(T0, '/users/:id', 40);
    await e.export([cpu]);

    const bytes = await fsp.readFile(path.join(dir, profileFileName('greet', 'cpu', cpu.endMs)));
    expect(bytes.equals(cpu.body)).toBe(true);
    const profile = Profile.decode(gunzipSync(bytes));
    const s = profile.stringTable.strings;
    expect(profile.sampleType.map((t) => s[Number(t.type)])).toEqual(['samples', 'cpu']);
    expect(profile.sample).toHaveLength(1);
    const labels = Object.fromEntries(profile.sample[0]!.label.map((l) => [s[Number(l.key)], s[Number(l.str)]]));
    expect(labels).toEqual({ route: '/users/:id', method: 'GET' });
    expect(Number(profile.sample[0]!.value[1])).toBe(40 * MS);
  });

  it('atomically: the bytes go to a hidden temporary name that is then renamed', async () => {
    const e = exporter();
    const cpu = cpuProfile(T0);
    const finalPath = path.join(dir, profileFileName('greet', 'cpu', cpu.endMs));
    const writeTargets: string[] = [];
    const realWriteFile = fsp.writeFile.bind(fsp);
    jest.spyOn(fsp, 'writeFile').mockImplementation(async (target, data, options) => {
      writeTargets.push(String(target));
      // While the bytes are being written, the final name does not exist yet.
      expect(fs.existsSync(finalPath)).toBe(false);
      return realWriteFile(target, data, options);
    });
    const rename = jest.spyOn(fsp, 'rename');

    await e.export([cpu]);

    expect(writeTargets).toHaveLength(1);
    const temp = writeTargets[0]!;
    expect(path.dirname(temp)).toBe(dir);
    expect(path.basename(temp)).toMatch(/^\..*\.tmp$/);
    expect(rename).toHaveBeenCalledWith(temp, finalPath);
    expect(await listDir()).toEqual([path.basename(finalPath)]);
  });

  it('never overwrites: two windows ending in the same millisecond get two files', async () => {
    const e = exporter();
    await e.export([cpuProfile(T0, '/a')]);
    await e.export([cpuProfile(T0, '/b')]);
    const names = await listDir();
    expect(names).toHaveLength(2);
    expect(names.map((n) => parseProfileFileName(n)!.sequence).sort()).toEqual([0, 1]);
  });
});

describe('FileExporter bounds', () => {
  it('keeps at most maxFiles of its files, deleting the oldest, counted as rotated', async () => {
    const e = exporter({ maxFiles: 3 });
    const ends: number[] = [];
    for (let i = 0; i < 5; i++) {
      const p = cpuProfile(T0 + i * 15_000);
      ends.push(p.endMs);
      await e.export([p]);
    }
    expect(await listDir()).toEqual(ends.slice(2).map((t) => profileFileName('greet', 'cpu', t)));
    expect(e.stats()).toMatchObject({ uploadsOk: 5, rotated: 2, dropped: 0 });
  });

  it('keeps at most maxBytes, deleting the oldest', async () => {
    const size = 1000;
    const profiles = [0, 1, 2, 3].map((i) => ({ ...cpuProfile(T0 + i * 15_000), body: Buffer.alloc(size, i) }));
    const e = exporter({ maxBytes: Math.floor(size * 2.5) });
    for (const p of profiles) await e.export([p]);

    expect(await listDir()).toEqual(profiles.slice(2).map((p) => profileFileName('greet', 'cpu', p.endMs)));
    expect(e.stats().rotated).toBe(2);
  });

  it('leaves other apps and other files in the directory alone', async () => {
    await fsp.writeFile(path.join(dir, profileFileName('greet.v2', 'cpu', T0 - 60_000)), 'x');
    await fsp.writeFile(path.join(dir, profileFileName('other', 'cpu', T0 - 60_000)), 'x');
    await fsp.writeFile(path.join(dir, 'README.txt'), 'x');
    const e = exporter({ maxFiles: 1 });
    await e.export([cpuProfile(T0)]);
    await e.export([cpuProfile(T0 + 15_000)]);

    const names = await listDir();
    expect(names).toContain('README.txt');
    expect(names).toContain(profileFileName('greet.v2', 'cpu', T0 - 60_000));
    expect(names).toContain(profileFileName('other', 'cpu', T0 - 60_000));
    expect(names.filter((n) => parseProfileFileName(n)?.appName === 'greet')).toEqual([
      profileFileName('greet', 'cpu', T0 + 30_000),
    ]);
    expect(e.stats().rotated).toBe(1);
  });

  it('refuses a profile larger than maxBytes instead of emptying the directory, and counts it', async () => {
    const logger = recordingLogger();
    const small = cpuProfile(T0);
    const e = exporter({ maxBytes: small.body.length + 10, logger });
    await e.export([small]);
    const big: EncodedProfile = { ...cpuProfile(T0 + 15_000), body: Buffer.alloc(small.body.length + 11) };
    await e.export([big]);

    expect(await listDir()).toEqual([profileFileName('greet', 'cpu', small.endMs)]);
    expect(e.stats()).toMatchObject({ uploadsOk: 1, dropped: 1, rotated: 0 });
    expect(logger.errors[0]!.obj.code).toBe('PROFILE_TOO_LARGE');
    expect(logger.errors[0]!.msg).toContain('maxOutputBytes');
  });

  it('refuses bounds that would delete every file, naming the option', () => {
    expect(() => exporter({ maxFiles: 0 })).toThrow('maxOutputFiles must be a whole number >= 1, got 0');
    expect(() => exporter({ maxBytes: 1.5 })).toThrow('maxOutputBytes must be a whole number >= 1, got 1.5');
  });

  it('pure rotation choice: oldest first until both bounds hold', () => {
    const files = [{ size: 5 }, { size: 5 }, { size: 5 }, { size: 5 }];
    expect(filesToRotate(files, 10, 100)).toHaveLength(0);
    expect(filesToRotate(files, 2, 100)).toEqual(files.slice(0, 2));
    expect(filesToRotate(files, 10, 11)).toEqual(files.slice(0, 2));
  });
});

describe('FileExporter failures', () => {
  it('a directory that is a file: counted and logged, never thrown', async () => {
    const notADir = path.join(dir, 'profiles');
    await fsp.writeFile(notADir, 'I am a file');
    let now = 1_000_000;
    const logger = recordingLogger();
    const e = exporter({ dir: notADir, logger, now: () => now });

    await expect(e.export([cpuProfile(T0), wallProfile(T0)])).resolves.toBeUndefined();
    expect(e.stats()).toMatchObject({ uploadsOk: 0, uploadsFailed: 2, dropped: 2, pending: 0 });
    expect(e.stats().lastError).toMatch(/^EEXIST: could not write profile to .*profiles/);

    // The same error code is logged once a minute, then with the number suppressed meanwhile.
    expect(logger.errors).toHaveLength(1);
    expect(logger.errors[0]!.obj).toMatchObject({ code: 'EEXIST', exporter: 'file', kind: 'cpu' });
    now += 30_000;
    await e.export([cpuProfile(T0 + 15_000)]);
    expect(logger.errors).toHaveLength(1);
    now += 31_000;
    await e.export([cpuProfile(T0 + 30_000)]);
    expect(logger.errors).toHaveLength(2);
    expect(logger.errors[1]!.obj).toMatchObject({ code: 'EEXIST', suppressed: 2 });
    expect(e.stats().dropped).toBe(4);
  });

  it('a failed write leaves no temporary file behind', async () => {
    const e = exporter();
    jest.spyOn(fsp, 'rename').mockRejectedValueOnce(Object.assign(new Error('disk gone'), { code: 'EIO' }));
    await e.export([cpuProfile(T0)]);
    expect(await listDir()).toEqual([]);
    expect(e.stats()).toMatchObject({ uploadsFailed: 1, dropped: 1 });
    expect(e.stats().lastError).toContain('EIO');
  });
});

describe('FileExporter close', () => {
  it('waits for the writes in progress', async () => {
    const e = exporter();
    const writing = e.export([cpuProfile(T0), wallProfile(T0)]);
    await e.close(10_000);
    expect(await listDir()).toHaveLength(2);
    await writing;
  });

  it('counts profiles arriving after close as dropped', async () => {
    const e = exporter();
    await e.close(1000);
    await e.export([cpuProfile(T0)]);
    expect(await listDir()).toEqual([]);
    expect(e.stats()).toMatchObject({ dropped: 1 });
    expect(e.stats().lastError).toContain('EXPORTER_CLOSED');
  });

  it('returns at the deadline when the disk hangs, and bounds what waits', async () => {
    jest.useFakeTimers();
    try {
      const e = exporter({ maxPending: 2 });
      let reachedDisk!: () => void;
      const diskReached = new Promise<void>((resolve) => (reachedDisk = resolve));
      jest.spyOn(fsp, 'writeFile').mockImplementation(() => {
        reachedDisk();
        return new Promise<void>(() => undefined); // the disk never answers
      });
      void e.export([cpuProfile(T0)]);
      void e.export([cpuProfile(T0 + 15_000)]);
      void e.export([cpuProfile(T0 + 30_000)]); // over maxPending
      expect(e.stats()).toMatchObject({ pending: 2, dropped: 1 });
      expect(e.stats().lastError).toContain('QUEUE_FULL');
      await diskReached;

      let closed = false;
      const closing = e.close(5000).then(() => {
        closed = true;
      });
      await jest.advanceTimersByTimeAsync(4999);
      expect(closed).toBe(false);
      await jest.advanceTimersByTimeAsync(1);
      await closing;
      expect(closed).toBe(true);
    } finally {
      jest.useRealTimers();
    }
  });
});
