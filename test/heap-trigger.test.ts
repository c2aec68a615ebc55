/**
 * The heap trigger in a process of its own, started with a small --max-old-space-size: a route
 * retains memory, heapThreshold starts a session, and the session's heap profile points at the
 * retaining function, whose allocations were all made before the session (the heap sampler runs
 * from ready() when a heap or memory threshold is set).
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { runFixtureInChild } from './fixtures/host-safety-child-process';
import { str } from './helpers/ingest-stand-in';

interface HeapTriggerResult {
  chunksBeforeSession: number;
  chunksAtEnd: number;
  bytesRetained: number;
  heapSizeLimit: number;
  threshold: number;
  lastTrigger?: { signal: string; value?: number; threshold?: number };
  heapUsageAtStart: number;
  sessions: number;
}

/** inuse_space per stack (function names, leaf first), largest first. */
function inuseStacks(profile: Profile): Array<{ stack: string[]; bytes: number }> {
  const index = profile.sampleType.findIndex((t) => str(profile, t.type) === 'inuse_space');
  const fn = new Map(profile.function.map((f) => [Number(f.id), str(profile, f.name)]));
  const loc = new Map(profile.location.map((l) => [Number(l.id), l.line.map((line) => fn.get(Number(line.functionId)) ?? '?')]));
  return profile.sample
    .map((s) => ({ stack: s.locationId.flatMap((id) => loc.get(Number(id)) ?? []), bytes: Number(s.value[index]) }))
    .sort((a, b) => b.bytes - a.bytes);
}

it('heapThreshold starts a session whose heap profile shows the retaining function, allocations from before the session included', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fcp-heap-trigger-'));
  const run = await runFixtureInChild<HeapTriggerResult>('test/fixtures/heap-trigger-child.ts', 'HEAP_TRIGGER_RESULT', {
    nodeFlags: ['--max-old-space-size=64'],
    env: { OUTPUT_DIR: dir },
    timeoutMs: 60_000,
  });
  const result = run.result;
  expect({ exitCode: run.exitCode, stderr: run.stderr.slice(0, 2000) }).toEqual({ exitCode: 0, stderr: '' });
  expect(result).toBeDefined();
  expect(result!.lastTrigger).toMatchObject({ signal: 'heap', threshold: result!.threshold });
  expect(result!.lastTrigger!.value).toBeGreaterThanOrEqual(result!.threshold);
  expect(result!.sessions).toBe(1);
  // nothing was retained once the session had started
  expect(result!.chunksAtEnd).toBe(result!.chunksBeforeSession);

  const heapFiles = readdirSync(dir).filter((f) => f.includes('.heap.')).sort();
  expect(heapFiles.length).toBeGreaterThan(0);
  // the session's first heap profile
  const first = Profile.decode(gunzipSync(readFileSync(path.join(dir, heapFiles[0]))));
  const stacks = inuseStacks(first);
  const top = stacks.slice(0, 5);
  expect(top.some(({ stack }) => stack.includes('retainMemoryForHeapTrigger'))).toBe(true);
  // most of what was retained before the session is in its first profile (sampled: an estimate)
  const retainedInProfile = stacks.filter(({ stack }) => stack.includes('retainMemoryForHeapTrigger')).reduce((sum, s) => sum + s.bytes, 0);
  expect(retainedInProfile).toBeGreaterThan(result!.bytesRetained * 0.5);
}, 90_000);
