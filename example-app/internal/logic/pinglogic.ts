/**
 * The ping logic, with the CPU-burning loop of go-zero's profiling walkthrough, and a memory leak
 * to find the same way (a list of pings that nothing ever trims).
 */
import type { ServiceContext } from '../svc/servicecontext';
import type { PingResponse } from '../types/types';

/**
 * Iterations of the walkthrough's loop: about a millisecond of CPU per request, several times
 * what the rest of a /ping costs. Module-local on purpose: a bound read from `exports` (as an
 * exported constant compiles to) made V8 run this loop several times slower.
 */
const ITERATIONS = 1_000_000;

/** Written by simulateCPULoad so the optimizer cannot drop the loop as dead code. */
let sink = 0;

/**
 * Burn CPU on purpose: the function a flame graph of a loaded /ping should show on top.
 * Each iteration is one step of an FNV-1a hash over the counter's low byte: a chain of
 * dependent integer multiplications the compiler cannot shortcut.
 */
export function simulateCPULoad(): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < ITERATIONS; i++) {
    hash = Math.imul(hash ^ (i & 0xff), 0x01000193);
  }
  sink = hash;
  return sink;
}

/** What the leak keeps of each ping: about 2 KiB on the V8 heap. */
interface PingRecord {
  at: number;
  seq: number;
  note: string;
}

/** Every ping since the start: the leak. Module-level, so nothing ever frees it. */
const pingHistory: PingRecord[] = [];

/**
 * Remember this ping, forever: the function a growth report of a leaking greet should rank on
 * top. The note is a fresh 2 KiB string per record (a slice of a shared one would not allocate).
 */
export function retainPingRecord(): number {
  const seq = pingHistory.length;
  pingHistory.push({ at: Date.now(), seq, note: `ping ${seq} `.padEnd(2048, '.') });
  return pingHistory.length;
}

export class PingLogic {
  constructor(private readonly svcCtx: ServiceContext) {}

  ping(): PingResponse {
    if (this.svcCtx.config.SimulateCPULoad) simulateCPULoad();
    if (this.svcCtx.config.SimulateMemoryLeak) retainPingRecord();
    return { msg: 'pong' };
  }
}
