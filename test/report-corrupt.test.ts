/**
 * The report on corrupt and hostile profile files: each is skipped at once with a message naming
 * it, the others are still read, and the command fails only when nothing could be read.
 * (pprof-format alone spins for tens of seconds on a long run of 0x80 bytes in a number.)
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { runReportCommand } from '../src/report/command';
import { decodeProfile, loadReport, MAX_PROFILE_BYTES } from '../src/report/read-profiles';
import { checkPprofWireFormat } from '../src/report/wire-check';
import { buildProfile, CPU_TYPES, KNOWN_WINDOWS, MS } from './fixtures/report-profiles';

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'report-corrupt-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const valid = (): Buffer => Buffer.from(buildProfile(KNOWN_WINDOWS[0]).encode());

/** A field 9 (time_nanos, a varint) whose number is a megabyte of continuation bytes. */
function runOf0x80(bytes: number): Buffer {
  return Buffer.concat([Buffer.from([9 << 3]), Buffer.alloc(bytes, 0x80), Buffer.from([0x01])]);
}

const CORRUPT: Array<[string, () => Buffer, RegExp]> = [
  ['0x80 run in a number (raw)', () => runOf0x80(1 << 20), /a number longer than 10 bytes at byte 1/],
  ['0x80 run in a number (gzipped)', () => gzipSync(runOf0x80(1 << 20)), /a number longer than 10 bytes/],
  ['0x80 run inside a sample', () => Buffer.concat([Buffer.from([(2 << 3) | 2, 0x85, 0x80, 0x04, (1 << 3) | 2, 0x80, 0x80, 0x04]), Buffer.alloc(65_540, 0x80)]), /a number longer than 10 bytes/],
  ['truncated (raw)', () => valid().subarray(0, Math.floor(valid().length / 2)), /runs past the end|ends inside a number/],
  ['truncated (gzipped)', () => gzipSync(valid()).subarray(0, 40), /not a complete gzip stream/],
  ['random bytes', () => Buffer.concat([Buffer.from([0x12, 0xff, 0xff, 0xff, 0x0f]), randomBytes(4096)]), /runs past the end/],
  ['an unused wire type', () => Buffer.from([(1 << 3) | 3, 0x00]), /wire type 3 \(not used by pprof\)/],
];

describe('decodeProfile refuses corrupt bytes at once, saying what is wrong', () => {
  test.each(CORRUPT)('%s', (_name, bytes, reason) => {
    expect(() => decodeProfile(bytes())).toThrow(reason);
  });

  test('a gzip bomb past the size bound', () => {
    const bomb = gzipSync(Buffer.alloc(MAX_PROFILE_BYTES + 1024));
    expect(() => decodeProfile(bomb)).toThrow(`more than ${MAX_PROFILE_BYTES} bytes once decompressed`);
  });

  test('valid profiles pass the check, non-ASCII names included (multi-byte UTF-8 is not a number)', () => {
    const spec = { sampleTypes: CPU_TYPES, samples: [{ stack: ['読み込み処理関数@/srv/アプリ/処理.ts:3'], labels: { route: '/ユーザー' }, values: [1, 10 * MS] }] };
    const bytes = Buffer.from(buildProfile(spec).encode());
    expect(() => checkPprofWireFormat(bytes)).not.toThrow();
    const decoded = decodeProfile(gzipSync(bytes));
    expect(decoded.stringTable.strings).toContain('読み込み処理関数');
    for (const window of KNOWN_WINDOWS) expect(() => checkPprofWireFormat(buildProfile(window).encode())).not.toThrow();
  });
});

describe('the report over a directory with corrupt files', () => {
  test('skips each corrupt file by name and reports the good one', async () => {
    await fsp.writeFile(path.join(dir, 'good.pb.gz'), gzipSync(valid()));
    for (const [index, [, bytes]] of CORRUPT.entries()) await fsp.writeFile(path.join(dir, `corrupt-${index}.pb.gz`), bytes());
    const report = await loadReport([dir]);
    expect(report.profileCount).toBe(1);
    expect(report.skipped.map((s) => path.basename(s.source)).sort()).toEqual(CORRUPT.map((_, i) => `corrupt-${i}.pb.gz`).sort());
    for (const [index, [, , reason]] of CORRUPT.entries()) {
      const skipped = report.skipped.find((s) => path.basename(s.source) === `corrupt-${index}.pb.gz`);
      expect(skipped?.reason).toMatch(/^not a readable pprof profile: /);
      expect(skipped?.reason).toMatch(reason);
    }
  });

  test('the command exits 0 with a good file among corrupt ones, 1 naming the files when none is readable', async () => {
    const io = () => {
      const out = { stdout: '', stderr: '' };
      return { out, io: { stdout: (t: string) => (out.stdout += t), stderr: (t: string) => (out.stderr += t) } };
    };
    await fsp.writeFile(path.join(dir, 'hostile.pb.gz'), runOf0x80(1 << 20));
    await fsp.writeFile(path.join(dir, 'truncated.pb.gz'), gzipSync(valid()).subarray(0, 40));
    const none = io();
    expect(await runReportCommand([dir], none.io)).toBe(1);
    expect(none.out.stderr).toMatch(/none of the 2 profile files could be used/);
    expect(none.out.stderr).toMatch(/hostile\.pb\.gz: not a readable pprof profile: a number longer than 10 bytes/);
    expect(none.out.stderr).toMatch(/truncated\.pb\.gz: not a readable pprof profile: not a complete gzip stream/);

    await fsp.writeFile(path.join(dir, 'good.pb.gz'), gzipSync(valid()));
    const some = io();
    expect(await runReportCommand([dir], some.io)).toBe(0);
    expect(some.out.stdout).toMatch(/\/ping/);
    expect(some.out.stdout).toMatch(/hostile\.pb\.gz: not a readable pprof profile/);
  });

  test('a file over the size bound is refused before it is read', async () => {
    const file = path.join(dir, 'huge.pb');
    await fsp.writeFile(file, '');
    await fsp.truncate(file, MAX_PROFILE_BYTES + 1);
    await fsp.writeFile(path.join(dir, 'good.pb.gz'), gzipSync(valid()));
    const report = await loadReport([dir]);
    expect(report.skipped.find((s) => s.source === file)?.reason).toMatch(/more than the \d+ bytes a profile may have/);
  });
});
