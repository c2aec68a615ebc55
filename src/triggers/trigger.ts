/** The interface every trigger implements (kept apart from index.ts so the signals import no cycle). */

export type TriggerSignal = 'cpu' | 'eventLoop' | 'heap' | 'memory';

/** What started a session: a signal, start() ('manual') or `cpuThreshold: 0` ('continuous'). */
export type TriggerCause = TriggerSignal | 'manual' | 'continuous';

export interface Trigger {
  readonly signal: TriggerSignal;
  /** per mille; `false` = this signal never starts a session (it is still read, for stats) */
  readonly threshold: number | false;
  /**
   * Per mille, 0..1000: over the interval since the previous read (cpu, eventLoop) or right now
   * (heap, memory). May reject; the controller counts and logs it.
   */
  read(): Promise<number> | number;
  /** Start a new interval now without reporting one (interval signals only). */
  restart?(): Promise<void> | void;
  /** What the last reading was made of, for the reason of the session it starts (e.g. cpu: by thread). */
  explain?(): string | undefined;
}

/** Per mille of `part` in `whole`, rounded and clamped to 0..1000; 0 when whole is not positive. */
export function perMille(part: number, whole: number): number {
  if (!(whole > 0) || !Number.isFinite(part)) return 0;
  return Math.max(0, Math.min(1000, Math.round((part / whole) * 1000)));
}
