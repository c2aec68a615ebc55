/**
 * Host safety, the profiler's own lifecycle: many start/stop cycles in one process (manual
 * `app.profiler.start()/stop()`, and threshold-driven sessions of the ProfilingController over
 * the real engine with a fake usage source) must not crash, reject unhandled, leak handles or
 * memory, and the profiles must still be right afterwards.
 *
 * The soak runs in a child process (test/fixtures/host-safety-lifecycle-child.ts, started with
 * --expose-gc) so memory is measured after real garbage collections and the child's
 * `unhandledRejection`/`uncaughtException` handlers see everything; a failure there fails here.
 * Parameter: FCP_LIFECYCLE_CYCLES, cycles per soak (default 100, so 200 in all).
 */
import { runFixtureInChild } from './fixtures/host-safety-child-process';
import type { LifecycleResult, SoakResult } from './fixtures/host-safety-lifecycle-child';
import { BURN_FUNCTION } from './fixtures/host-safety-helpers';

const CYCLES = Number(process.env.FCP_LIFECYCLE_CYCLES ?? 100);
/** Heap + external growth allowed over one soak: a leak of even 10 KB per cycle exceeds it. */
const MEMORY_NOISE_BYTES = Math.max(1_000_000, CYCLES * 5_000);
const KiB = 1024;

function totalResources(resources: Record<string, number>): number {
  return Object.values(resources).reduce((sum, n) => sum + n, 0);
}

describe(`lifecycle: ${CYCLES} manual and ${CYCLES} threshold-driven start/stop cycles in one process`, () => {
  let result: LifecycleResult;
  const soak = (name: SoakResult['name']): SoakResult => result.soaks.find((s) => s.name === name) as SoakResult;

  beforeAll(async () => {
    const run = await runFixtureInChild<LifecycleResult>('test/fixtures/host-safety-lifecycle-child.ts', 'LIFECYCLE_RESULT', {
      nodeFlags: ['--expose-gc'],
      env: { FCP_LIFECYCLE_CYCLES: String(CYCLES) },
      timeoutMs: 170_000,
    });
    if (run.result === undefined) throw new Error(`the soak child printed no result (exit ${run.exitCode}):\n${run.stderr}`);
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0); // and it exited by itself: nothing left holding the event loop
    result = run.result;
    console.log(
      result.soaks
        .map(
          (s) =>
            `${result.node} ${s.name}: ${s.cycles} cycles in ${s.elapsedMs} ms, memory ${((s.after.memory - s.baseline.memory) / KiB).toFixed(0)} KiB, ` +
            `resources ${JSON.stringify(s.baseline.resources)} -> ${JSON.stringify(s.after.resources)}, stats ${JSON.stringify(s.stats)}`,
        )
        .join('\n'),
    );
  }, 180_000);

  it('never rejects unhandled nor throws uncaught, and logs no error', () => {
    expect(result.unhandled).toEqual([]);
    // queue-full warnings are the exporter's bound working (counted in dropped), anything else is not
    expect(result.errorLogs.filter((line) => !line.includes('upload queue full'))).toEqual([]);
  });

  test.each(['manual', 'threshold'] as const)('%s: every cycle started a session and the engine was never refused', (name) => {
    const s = soak(name);
    expect(s.cycles).toBeGreaterThanOrEqual(CYCLES);
    expect(s.failedStarts).toBe(0);
    expect(s.stats.engineErrors).toBe(0);
    expect(s.stats.lastError).toBeUndefined();
    expect(s.stats.windows).toBeGreaterThanOrEqual(s.sessions);
  });

  test.each(['manual', 'threshold'] as const)('%s: no handle or memory growth beyond noise', (name) => {
    const s = soak(name);
    expect(s.after.resources.Timeout ?? 0).toBe(s.baseline.resources.Timeout ?? 0);
    // one keep-alive socket may come or go with the ingest stand-in's timing
    expect(totalResources(s.after.resources)).toBeLessThanOrEqual(totalResources(s.baseline.resources) + 1);
    expect(s.after.memory - s.baseline.memory).toBeLessThan(MEMORY_NOISE_BYTES);
  });

  test.each(['manual', 'threshold'] as const)('%s: every profile is accounted for (uploaded or counted as dropped)', (name) => {
    const s = soak(name);
    expect(s.stats.pending).toBe(0);
    expect(s.stats.uploadsFailed).toBe(0);
    expect(s.stats.uploadsOk + s.stats.dropped).toBe(s.stats.profilesCollected);
    expect(s.ingestRequests).toBeGreaterThan(0);
  });

  test.each(['manual', 'threshold'] as const)('%s: a profile taken after the soak is still right', (name) => {
    const s = soak(name);
    expect(s.finalDecodeErrors).toBe(0);
    expect(s.finalCpuUploads).toBe(1);
    expect(s.finalHottestFunction).toBe(BURN_FUNCTION);
  });

  test.each(['manual', 'threshold'] as const)('%s: the engine is released after close', (name) => {
    expect(soak(name).engineRunningAfter).toEqual({ time: false, heap: false });
  });
});
