/**
 * Runs a script in a child process and resolves with the one message it sends back over IPC
 * (a test that needs a process of its own: one profiler per process, a different loader or Node
 * flags). Rejects on a `{ error }` message, a timeout, or an exit before any message; resolves
 * only once the child has exited, so no child outlives its test.
 */
import { fork } from 'node:child_process';
import path from 'node:path';

export interface ChildOptions {
  execArgv?: string[];
  env?: NodeJS.ProcessEnv;
  execPath?: string;
  timeoutMs?: number;
}

/** execArgv that loads the TypeScript sources (src/) in the child. */
export const TS_NODE_ARGV = ['-r', require.resolve('ts-node/register/transpile-only')];
export const TS_NODE_ENV = { TS_NODE_PROJECT: path.resolve(__dirname, '..', '..', 'tsconfig.json') };

export function runChild<T>(script: string, args: string[], options: ChildOptions = {}): Promise<T> {
  const { execArgv = TS_NODE_ARGV, env = {}, execPath = process.execPath, timeoutMs = 50_000 } = options;
  return new Promise((resolve, reject) => {
    const child = fork(script, args, {
      execArgv,
      execPath,
      env: { ...process.env, ...TS_NODE_ENV, ...env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let outcome: { error?: Error; value?: T } | undefined;
    const timer = setTimeout(() => {
      outcome ??= { error: new Error(`${path.basename(script)} timed out after ${timeoutMs} ms`) };
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('message', (message: { error?: string }) => {
      if (outcome !== undefined) return;
      outcome = message?.error !== undefined ? { error: new Error(`${path.basename(script)} failed: ${message.error}`) } : { value: message as T };
    });
    child.on('error', (error) => {
      outcome ??= { error };
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (outcome === undefined) reject(new Error(`${path.basename(script)} exited with code ${code} before reporting`));
      else if (outcome.error !== undefined) reject(outcome.error);
      else resolve(outcome.value as T);
    });
  });
}
