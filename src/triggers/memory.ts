/**
 * The memory trigger: the process's resident set size over the memory available to it, in per
 * mille, read at the check. "Available" is the container's cgroup memory limit when one is set
 * (v2 `memory.max`, v1 `memory/memory.limit_in_bytes`), else the machine's total memory: the
 * limit is where the kernel's OOM killer ends the process. RSS includes what the V8 heap does not
 * (Buffers, native modules, code), so it also sees leaks outside the JavaScript heap.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { perMille, type Trigger } from './trigger';

export class MemorySignal implements Trigger {
  readonly signal = 'memory' as const;

  constructor(
    readonly threshold: number | false,
    /** bytes available to this process (see memoryAvailable) */
    private readonly limitBytes: number,
    private readonly rss: () => number = () => process.memoryUsage.rss(),
  ) {}

  read(): number {
    return perMille(this.rss(), this.limitBytes);
  }
}

/**
 * The cgroup memory limit in bytes, or undefined when there is none. v2: `memory.max` is a number
 * or "max"; v1: `memory.limit_in_bytes` holds a huge number (about 2^63) when unlimited, which
 * is treated as no limit when it is not below the machine's memory.
 */
export async function readCgroupMemoryLimit(root = '/sys/fs/cgroup', totalBytes = os.totalmem()): Promise<number | undefined> {
  const text = (await readText(`${root}/memory.max`)) ?? (await readText(`${root}/memory/memory.limit_in_bytes`));
  if (text === undefined) return undefined;
  const bytes = Number(text.trim());
  if (!Number.isFinite(bytes) || bytes <= 0 || bytes >= totalBytes) return undefined; // "max", or no real limit
  return bytes;
}

/** The memory this process can use: the cgroup limit when set, else the machine's total memory. */
export async function memoryAvailable(root?: string, totalBytes = os.totalmem()): Promise<number> {
  const limit = await readCgroupMemoryLimit(root, totalBytes).catch(() => undefined);
  return limit ?? totalBytes;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}
