/**
 * Which label mode this Node process should get, from its version and flags alone (independent
 * of the engine's own probe, so tests can check the probe): AsyncContextFrame is on by default
 * from Node 24 (off with --no-async-context-frame), and on Node 22 only with
 * --experimental-async-context-frame (CI runs Node 22 both ways, the flag in NODE_OPTIONS).
 */
export const NODE_MAJOR = Number(process.versions.node.split('.')[0]);

function hasFlag(flag: string): boolean {
  return process.execArgv.includes(flag) || (process.env.NODE_OPTIONS ?? '').split(/\s+/).includes(flag);
}

export function expectedLabelMode(): 'cped' | 'async-hooks' {
  if (NODE_MAJOR >= 24) return hasFlag('--no-async-context-frame') ? 'async-hooks' : 'cped';
  if (NODE_MAJOR === 22) return hasFlag('--experimental-async-context-frame') ? 'cped' : 'async-hooks';
  return 'async-hooks';
}
