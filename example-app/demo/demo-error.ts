/** A step of the demo failed: the message says which and why; the demo exits non-zero with it. */
export class DemoError extends Error {
  override name = 'DemoError';
}
