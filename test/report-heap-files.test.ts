/**
 * The heap report and `--growth` on real heap profiles: the plugin's own files from a process
 * whose memory behaves in known ways (test/fixtures/heap-growth-child.ts), and files that
 * Grafana's Node SDK (@pyroscope/nodejs) uploaded (test/fixtures/heap-sdk-child.ts).
 *
 * Heap profiles are sampled (V8 picks an allocation every `heapSamplingInterval` bytes on
 * average and scales it up), so bytes are compared with a tolerance: 16 KiB sampling over
 * megabytes of 8 KiB arrays gives a few hundred samples per function, a relative error of a
 * few per cent; the bounds below leave room for 25 %.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runReportCommand } from '../src/report/command';
import { selfGrowth, type GrowthReport } from '../src/report/growth';
import { loadGrowthReport, loadReport } from '../src/report/read-profiles';
import { runFixtureInChild } from './fixtures/host-safety-child-process';

interface GrowthChildResult {
  chunkBytes: number;
  largeCacheBytes: number;
  smallCacheBytes: number;
  leakedBytes: number;
  leakRequests: number;
  churnRequests: number;
  windows: number;
}

const TOLERANCE = 0.25;

function expectAbout(actual: number, expected: number): void {
  expect(actual).toBeGreaterThan(expected * (1 - TOLERANCE));
  expect(actual).toBeLessThan(expected * (1 + TOLERANCE));
}

function selfOf(report: { routes: { functions: { name: string; self: number }[] }[] }, name: string): number {
  return report.routes[0]?.functions.find((f) => f.name === name)?.self ?? 0;
}

/** Self growth of a function among the growing ones (0 when it did not grow). */
function growthOf(growth: GrowthReport, name: string): number {
  const row = growth.functions.find((f) => f.name === name);
  return row ? selfGrowth(row) : 0;
}

describe("the plugin's own heap files", () => {
  let dir: string;
  let child: GrowthChildResult;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'fcp-heap-files-'));
    const run = await runFixtureInChild<GrowthChildResult>('test/fixtures/heap-growth-child.ts', 'HEAP_GROWTH_RESULT', {
      nodeFlags: ['--expose-gc'],
      env: { OUTPUT_DIR: dir },
      timeoutMs: 60_000,
    });
    expect({ exitCode: run.exitCode, stderr: run.stderr.slice(0, 2000) }).toEqual({ exitCode: 0, stderr: '' });
    child = run.result!;
    expect(child.leakRequests).toBe(80);
    expect(child.churnRequests).toBe(80);
    expect(readdirSync(dir).filter((f) => f.includes('.heap.')).length).toBeGreaterThanOrEqual(3);
  }, 90_000);

  it('reports the function that retains the most on top, with the bytes it holds', async () => {
    const report = await loadReport([dir]);
    expect(report.sampleType).toEqual({ type: 'inuse_space', unit: 'bytes' });
    const names = report.routes[0]!.functions.map((f) => f.name);
    expect(names[0]).toBe('retainLargeCache');
    expect(names.indexOf('leakRecords')).toBeLessThan(names.indexOf('retainSmallCache'));
    expectAbout(selfOf(report, 'retainLargeCache'), child.largeCacheBytes);
    expectAbout(selfOf(report, 'retainSmallCache'), child.smallCacheBytes);
    expectAbout(selfOf(report, 'leakRecords'), child.leakedBytes);
    expect(selfOf(report, 'churnRecords')).toBeLessThan(child.leakedBytes * 0.05);
  });

  it('--growth puts the leaking function on top, the one that only churns near zero, the caches at zero', async () => {
    const growth = await loadGrowthReport([dir]);
    expect(growth.functions[0]!.name).toBe('leakRecords');
    // the earliest window was cut before the load began, the latest after it ended
    expectAbout(growthOf(growth, 'leakRecords'), child.leakedBytes);
    expect(Math.abs(growthOf(growth, 'churnRecords'))).toBeLessThan(child.leakedBytes * 0.05);
    expect(growthOf(growth, 'retainLargeCache')).toBe(0);
    expect(growth.elapsedMs).toBeGreaterThan(3000);

    let out = '';
    const code = await runReportCommand([dir, '--growth', '--top', '3'], { stdout: (t) => (out += t), stderr: (t) => (out += t) });
    expect(code).toBe(0);
    expect(out).toMatch(/Top 3 functions by growth[^\n]*\n\s+Growth\s+Rate[^\n]*\n\s+\+[\d.]+ (KiB|MiB)\s+\+[\d.]+ (KiB|MiB)\/min[^\n]*leakRecords\s+\S*heap-growth-child\.js:\d+/);
  });
});

describe('heap profiles written by @pyroscope/nodejs', () => {
  it('reads them: the heap report and --growth name the functions that keep the memory', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fcp-heap-sdk-'));
    const run = await runFixtureInChild<{ uploads: number; names: string[] }>('test/fixtures/heap-sdk-child.ts', 'HEAP_SDK_RESULT', {
      nodeFlags: ['--expose-gc'],
      env: { OUTPUT_DIR: dir },
      timeoutMs: 60_000,
    });
    expect({ exitCode: run.exitCode, stderr: run.stderr.slice(0, 2000) }).toEqual({ exitCode: 0, stderr: '' });
    expect(run.result!.uploads).toBeGreaterThanOrEqual(2);

    const report = await loadReport([dir]);
    expect(report.heap).toBeDefined();
    // the SDK's `<file>:<name>:<line>` names read as the name, file:line beside it
    const names = report.routes[0]!.functions.map((f) => f.name);
    expect(names.filter((n) => /:\d+$/.test(n) && !n.startsWith('('))).toEqual([]);
    expect(report.routes[0]!.functions[0]!.location).toMatch(/heap-sdk-child\.js:\d+$/);
    expect(report.routes[0]!.functions[0]!.name).toBe('keepOrders');
    expectAbout(selfOf(report, 'keepOrders'), 6 * 1024 * 1024);
    expectAbout(selfOf(report, 'keepSessions'), 2 * 1024 * 1024);

    const growth = await loadGrowthReport([dir]);
    // keepSessions ran between the SDK's first and last upload, keepOrders before the first
    expect(growth.functions[0]!.name).toBe('keepSessions');
    expectAbout(growthOf(growth, 'keepSessions'), 2 * 1024 * 1024);
    expect(Math.abs(growthOf(growth, 'keepOrders'))).toBeLessThan(6 * 1024 * 1024 * 0.05);
  }, 90_000);
});
