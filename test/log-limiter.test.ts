import { LogLimiter } from '../src/log-limiter';

/** A clock the test moves by hand. */
function manualClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return { now: () => time, advance: (ms) => (time += ms) };
}

describe('LogLimiter', () => {
  test('logs the first message of a kind, holds back repeats within the interval and reports how many', () => {
    const clock = manualClock();
    const limiter = new LogLimiter({ intervalMs: 60_000, now: clock.now });

    expect(limiter.admit('http_503')).toBe(0);
    clock.advance(1_000);
    expect(limiter.admit('http_503')).toBeUndefined();
    clock.advance(30_000);
    expect(limiter.admit('http_503')).toBeUndefined();
    expect(limiter.suppressedCounts()).toEqual({ http_503: 2 });

    clock.advance(29_000); // exactly one minute after the logged one
    expect(limiter.admit('http_503')).toBe(2);
    expect(limiter.suppressedCounts()).toEqual({});
    clock.advance(59_999);
    expect(limiter.admit('http_503')).toBeUndefined();
  });

  test('kinds are independent', () => {
    const clock = manualClock();
    const limiter = new LogLimiter({ now: clock.now });
    expect(limiter.admit('http_401')).toBe(0);
    expect(limiter.admit('http_422')).toBe(0);
    expect(limiter.admit('http_401')).toBeUndefined();
    expect(limiter.admit('ECONNREFUSED')).toBe(0);
    expect(limiter.suppressedCounts()).toEqual({ http_401: 1 });
  });

  test('defaults to one minute and Date.now (works with Jest fake timers)', () => {
    jest.useFakeTimers({ now: 5_000_000 });
    try {
      const limiter = new LogLimiter();
      expect(limiter.admit('k')).toBe(0);
      expect(limiter.admit('k')).toBeUndefined();
      jest.advanceTimersByTime(59_000);
      expect(limiter.admit('k')).toBeUndefined();
      jest.advanceTimersByTime(1_000);
      expect(limiter.admit('k')).toBe(2);
    } finally {
      jest.useRealTimers();
    }
  });

  test('remembers a bounded number of kinds, forgetting the least recently logged', () => {
    const clock = manualClock();
    const limiter = new LogLimiter({ now: clock.now, maxKinds: 2 });
    limiter.admit('a');
    limiter.admit('b');
    limiter.admit('c'); // forgets 'a'
    expect(limiter.admit('a')).toBe(0); // logged again: it was forgotten
    expect(limiter.admit('c')).toBeUndefined(); // still remembered
  });

  test('reset() lets the next message of every kind through', () => {
    const clock = manualClock();
    const limiter = new LogLimiter({ now: clock.now });
    limiter.admit('a');
    expect(limiter.admit('a')).toBeUndefined();
    limiter.reset();
    expect(limiter.admit('a')).toBe(0);
  });
});
