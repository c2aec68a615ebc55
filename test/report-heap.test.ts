/**
 * The report on heap profiles: automatic when the input holds only heap snapshots, the latest
 * snapshot shown (not a sum), in-use space and objects by function, no route column.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runReportCommand } from '../src/report/command';
import { loadReport } from '../src/report/read-profiles';
import { buildProfile, gzipProfile, type ProfileSpec } from './fixtures/report-profiles';

const HEAP_TYPES = [['inuse_objects', 'count'], ['inuse_space', 'bytes']] as const;
const T0 = Date.UTC(2026, 10, 26, 7, 0, 0);

function heapSpec(timeMs: number, leakBytes: number): ProfileSpec {
  return {
    sampleTypes: HEAP_TYPES,
    timeMs,
    samples: [
      { stack: ['main@/app/a.js:1', 'retainBig@/app/a.js:10'], values: [leakBytes / 1024, leakBytes] },
      { stack: ['main@/app/a.js:1', 'retainSmall@/app/a.js:20'], values: [10, 10 * 1024] },
    ],
  };
}

async function heapDir(): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'fcp-report-heap-'));
  await fsp.writeFile(path.join(dir, 'app.heap.2026-11-26T07-00-15.000Z.pb.gz'), gzipProfile(buildProfile(heapSpec(T0, 1024 * 1024))));
  await fsp.writeFile(path.join(dir, 'app.heap.2026-11-26T07-01-15.000Z.pb.gz'), gzipProfile(buildProfile(heapSpec(T0 + 60_000, 3 * 1024 * 1024))));
  return dir;
}

it('reports the latest heap snapshot by function when the input has only heap profiles', async () => {
  const report = await loadReport([await heapDir()]);
  expect(report.sampleType).toEqual({ type: 'inuse_space', unit: 'bytes' });
  expect(report.profileCount).toBe(1);
  expect(report.total).toBe(3 * 1024 * 1024 + 10 * 1024);
  expect(report.routes[0]!.functions.map((f) => [f.name, f.self])).toEqual([['retainBig', 3 * 1024 * 1024], ['retainSmall', 10 * 1024]]);
  expect(report.heap).toMatchObject({ timeMs: T0 + 60_000, earlierSnapshots: 1, objectsTotal: 3 * 1024 + 10 });
});

it('prints the heap table with objects and stacks, and says why there is no route', async () => {
  let out = '';
  const code = await runReportCommand([await heapDir(), '--type', 'heap'], { stdout: (t) => (out += t), stderr: (t) => (out += t) });
  expect(code).toBe(0);
  expect(out).toContain('Heap samples carry no route');
  expect(out).toMatch(/3\.0 MiB\s+99\.7%\s+3\.0 MiB\s+99\.7%\s+3072\s+retainBig\s+\/app\/a\.js:10/);
  expect(out).toContain('main > retainBig');
  expect(out).not.toContain('(no route)');
});

it('rejects corrupt heap files as the cpu report does', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'fcp-report-heap-bad-'));
  await fsp.writeFile(path.join(dir, 'app.heap.2026-11-26T07-00-15.000Z.pb.gz'), Buffer.from([0x1f, 0x8b, 1, 2, 3]));
  let err = '';
  const code = await runReportCommand([dir, '--type', 'heap'], { stdout: () => undefined, stderr: (t) => (err += t) });
  expect(code).toBe(1);
  expect(err).toContain('not a complete gzip stream');
});
