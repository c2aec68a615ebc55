/**
 * The greet service as a child process of the demo: its own process, so its profiles show greet
 * alone (the load generator runs in the demo's process).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { DemoError } from './demo-error';

/**
 * Greet runs with V8's function inlining off. Under sustained load V8 inlines simulateCPULoad
 * into the route handler and then into Fastify's preHandlerCallback; CPU profiles taken with
 * sample contexts (which route labels need) attribute inlined code to the function it was
 * inlined into, so simulateCPULoad would vanish from the flame graph after a few seconds
 * (measured: 15 % under its own name after 20 s, the rest under the handler). Go's profiler
 * keeps inlined frames; V8's does so only in line-number mode, which contexts exclude. The heap
 * profiler records no inlined frames either: with inlining on, the leak demo's retainPingRecord
 * allocated under preHandlerCallbackInner.
 */
export const KEEP_FUNCTIONS_VISIBLE = ['--no-turbo-inlining', '--no-maglev-inlining'];

/** How long greet may take to listen, and to exit after SIGTERM (flushTimeout 5 s plus the file writes). */
export const GREET_START_TIMEOUT_MS = 30_000;
export const GREET_STOP_TIMEOUT_MS = 30_000;

export interface GreetProcessOptions {
  /** greet.js (compiled) or greet.ts (run through ts-node) */
  script: string;
  /** options for node itself, before the script */
  nodeFlags: readonly string[];
  configFile: string;
  outputDir: string;
  simulateCPULoad: boolean;
  /** GREET_* variables beyond GREET_SIMULATE_CPU_LOAD (the leak scenario's) */
  greetEnv?: Record<string, string>;
  cwd: string;
  env: NodeJS.ProcessEnv;
  startTimeoutMs: number;
  /** called with each warning or error greet logs, for the user to see */
  onProblem: (line: string) => void;
}

/** What greet prints on SIGTERM once closed: the profiler's stats. */
export interface GreetExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stats?: GreetProfilerStats;
}

/** The part of the plugin's `app.profiler.stats()` the demo reads. */
export interface GreetProfilerStats {
  sessions?: number;
  windows?: number;
  /** what started the last session: the signal, its reading and the threshold */
  lastTrigger?: { signal: string; value?: number; threshold?: number };
  exporters?: Record<string, { uploadsOk: number; uploadsFailed: number; dropped: number; lastError?: string }>;
}

const LISTENING = /^Starting server at (\S+):(\d+)\.\.\.$/;
const HEAP_TRIGGER = /^Heap trigger: /;
const STOPPED = /^greet stopped, profiler stats: (\{.*\})$/;
/** pino's numeric levels: 40 warn, 50 error, 60 fatal. */
const PINO_WARN = 40;
/** Lines of greet's output kept for error messages (bounded: greet may log a lot). */
const KEPT_LINES = 30;

export class GreetProcess {
  private readonly recent: string[] = [];
  private stats: GreetProfilerStats | undefined;
  private readonly exited: Promise<GreetExit>;

  private constructor(
    private readonly child: ChildProcess,
    private readonly onProblem: (line: string) => void,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal, stats: this.stats }));
    });
  }

  /** where greet listens, from its `Starting server at HOST:PORT...` line */
  private address = '';
  /** greet's `Heap trigger: ...` line, when GREET_HEAP_THRESHOLD is set */
  heapTrigger: string | undefined;
  /** the plugin's "session started by ..." log message, once it has been logged */
  sessionStarted: string | undefined;

  get url(): string {
    return `http://${this.address}`;
  }

  /** Starts greet and resolves once it listens; throws (with its last output) if it does not. */
  static async start(options: GreetProcessOptions): Promise<GreetProcess> {
    const tsArgs = options.script.endsWith('.ts') ? ['-r', 'ts-node/register/transpile-only'] : [];
    const child = spawn(
      process.execPath,
      [...options.nodeFlags, ...tsArgs, options.script, '-f', options.configFile, '--port', '0', '--output-dir', options.outputDir],
      {
        cwd: options.cwd,
        env: { ...options.env, GREET_SIMULATE_CPU_LOAD: options.simulateCPULoad ? '1' : '0', ...options.greetEnv },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const greet = new GreetProcess(child, options.onProblem);
    killOnExit(child);
    await greet.listening(options.startTimeoutMs);
    return greet;
  }

  /** SIGTERM, so greet closes and the plugin writes the last window; SIGKILL after the timeout. */
  async stop(timeoutMs: number): Promise<GreetExit> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const result = await Promise.race([this.exited, timedOut]);
    clearTimeout(timer);
    if (result === 'timeout') {
      this.child.kill('SIGKILL');
      throw new DemoError(`greet did not exit within ${timeoutMs / 1000} s of SIGTERM (killed); its last output:\n${this.lastOutput()}`);
    }
    if (result.code !== 0) {
      throw new DemoError(`greet exited with ${result.signal ?? `code ${result.code}`} on SIGTERM; its last output:\n${this.lastOutput()}`);
    }
    return result;
  }

  /** Kill without waiting (cleanup after a failure elsewhere). */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  lastOutput(): string {
    return this.recent.length > 0 ? this.recent.map((line) => `  | ${line}`).join('\n') : '  (no output)';
  }

  private listening(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.kill();
        reject(new DemoError(`greet did not start within ${timeoutMs / 1000} s; its last output:\n${this.lastOutput()}`));
      }, timeoutMs);
      const onLine = (line: string): void => {
        const match = LISTENING.exec(line);
        if (!match) return;
        clearTimeout(timer);
        this.address = `${match[1]}:${match[2]}`;
        resolve();
      };
      this.readLines(this.child.stdout, onLine);
      this.readLines(this.child.stderr, () => undefined);
      this.exited.then((exit) => {
        clearTimeout(timer);
        reject(new DemoError(`greet exited (${exit.signal ?? `code ${exit.code}`}) before listening; its last output:\n${this.lastOutput()}`));
      });
    });
  }

  private readLines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
    if (!stream) return;
    let pending = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      pending += chunk;
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        this.takeLine(pending.slice(0, newline), onLine);
        pending = pending.slice(newline + 1);
        newline = pending.indexOf('\n');
      }
    });
  }

  private takeLine(line: string, onLine: (line: string) => void): void {
    this.recent.push(line);
    if (HEAP_TRIGGER.test(line)) this.heapTrigger = line;
    this.sessionStarted ??= sessionStartOf(line);
    if (this.recent.length > KEPT_LINES) this.recent.shift();
    const stopped = STOPPED.exec(line);
    if (stopped) this.stats = JSON.parse(stopped[1]) as GreetProfilerStats;
    const problem = problemOf(line);
    if (problem !== undefined) this.onProblem(problem);
    onLine(line);
  }
}

/** The plugin's `continuous profiling: session started by ...` message in greet's log (pino JSON). */
function sessionStartOf(line: string): string | undefined {
  if (!line.startsWith('{') || !line.includes('session started by')) return undefined;
  try {
    const msg = (JSON.parse(line) as { msg?: unknown }).msg;
    return typeof msg === 'string' && msg.startsWith('continuous profiling: session started by') ? msg : undefined;
  } catch {
    return undefined;
  }
}

/** A warning or error from greet's log (pino JSON), as one readable line; undefined otherwise. */
function problemOf(line: string): string | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const entry = JSON.parse(line) as { level?: number; msg?: string };
    if (typeof entry.level !== 'number' || entry.level < PINO_WARN) return undefined;
    return `${entry.level >= 50 ? 'error' : 'warn'}: ${entry.msg ?? line}`;
  } catch {
    return undefined;
  }
}

/** A demo that dies (exception, Ctrl-C) must not leave greet running. */
function killOnExit(child: ChildProcess): void {
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', kill);
  child.once('exit', () => process.removeListener('exit', kill));
}
