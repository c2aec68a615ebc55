/** Concurrent load on one URL with autocannon, bounded in time, with a progress line. */
import autocannon from 'autocannon';
import { DemoError } from './demo-error';

/** go-zero's walkthrough uses `hey -c 100`; 20 connections saturate greet's one thread just as well. */
export const DEMO_CONNECTIONS = 20;

/** A section heading of the demo's output. */
export function heading(text: string): void {
  console.log(`\n== ${text} ==`);
}

export interface LoadOptions {
  seconds: number;
  connections: number;
  /** what the response body must be; other bodies are counted as mismatches */
  expectBody: string;
  progress: ProgressLine;
}

export interface LoadResult {
  /** responses received with the expected status and body */
  ok: number;
  non2xx: number;
  errors: number;
  mismatches: number;
  latencyAvgMs: number;
  latencyP99Ms: number;
  seconds: number;
}

export async function driveLoad(url: string, options: LoadOptions): Promise<LoadResult> {
  const instance = autocannon({
    url,
    connections: options.connections,
    duration: options.seconds,
    timeout: 10,
    expectBody: options.expectBody,
  });
  const startedAt = Date.now();
  let done = 0;
  instance.on('tick', (tick: { counter: number }) => {
    done += tick.counter;
    const elapsed = Math.min((Date.now() - startedAt) / 1000, options.seconds);
    const rate = elapsed > 0 ? Math.round(done / elapsed) : 0;
    options.progress.update(
      `  load: ${elapsed.toFixed(0)}/${options.seconds} s  ${done} requests  ${rate} req/s  (${options.connections} connections)`,
    );
  });
  const result = await instance;
  options.progress.end();
  const ok = result['2xx'] - result.mismatches;
  if (ok <= 0) {
    throw new DemoError(
      `no successful GET ${url} during the load (${result.non2xx} non-2xx, ${result.errors} errors, ${result.mismatches} wrong bodies)`,
    );
  }
  return {
    ok,
    non2xx: result.non2xx,
    errors: result.errors,
    mismatches: result.mismatches,
    latencyAvgMs: result.latency.average,
    latencyP99Ms: result.latency.p99,
    seconds: result.duration,
  };
}

/**
 * One status line: rewritten in place on a terminal; on a pipe (CI, tests) a line every few
 * updates, so logs stay short.
 */
export class ProgressLine {
  private updates = 0;
  private last = '';

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stdout,
    private readonly pipeEvery: number = 5,
  ) {}

  update(text: string): void {
    this.last = text;
    this.updates += 1;
    if (this.stream.isTTY) this.stream.write(`\r${text}\u001b[K`);
    else if (this.updates % this.pipeEvery === 1) this.stream.write(`${text}\n`);
  }

  end(): void {
    if (this.stream.isTTY) this.stream.write('\n');
    else if (this.last && this.updates % this.pipeEvery !== 1) this.stream.write(`${this.last}\n`);
    this.updates = 0;
    this.last = '';
  }
}
