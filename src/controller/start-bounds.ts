/**
 * The bounds on automatically started sessions (those a trigger starts, not start() or
 * continuous mode): the cooldown after one ended, and `maxSessionsPerHour`. A crossing held back
 * is counted (stats().sessionsHeldBack) and said in the log, rate-limited.
 */
import type { TriggerCause, TriggerSignal } from '../triggers';
import { formatDuration } from '../duration';
import type { ControllerRecord } from './stats';

const HOUR_MS = 3_600_000;

export interface StartBoundOptions {
  /** ms after an automatically started session ends before a trigger may start the next; default 0 */
  cooldown?: number;
  /** automatically started sessions in any 60 minutes; default (and false) unbounded */
  maxSessionsPerHour?: number | false;
}

/** Started by a trigger (what the cooldown and the hourly bound are about), not by start() or continuous mode. */
export function isAutomatic(cause: TriggerCause): cause is TriggerSignal {
  return cause !== 'manual' && cause !== 'continuous';
}

export class StartBounds {
  readonly heldBack = { cooldown: 0, hourlyLimit: 0 };
  /** when the last automatically started session ended (for the cooldown) */
  private lastAutomaticEnd?: number;
  /** start times of automatic sessions in the last hour (pruned at each check that would start one) */
  private automaticStarts: number[] = [];

  constructor(
    private readonly options: StartBoundOptions,
    private readonly record: ControllerRecord,
    private readonly now: () => number,
  ) {}

  /** Whether a trigger may start a session now; a hold-back is counted and logged. */
  admit(): boolean {
    const now = this.now();
    const { cooldown = 0, maxSessionsPerHour = false } = this.options;
    if (this.lastAutomaticEnd !== undefined && now - this.lastAutomaticEnd < cooldown) {
      this.heldBack.cooldown++;
      this.record.log('held_back_cooldown', 'info', { cooldown: formatDuration(cooldown), heldBack: this.heldBack.cooldown }, 'continuous profiling: a trigger crossed within the cooldown; no session started');
      return false;
    }
    this.automaticStarts = this.automaticStarts.filter((at) => now - at < HOUR_MS);
    if (maxSessionsPerHour !== false && this.automaticStarts.length >= maxSessionsPerHour) {
      this.heldBack.hourlyLimit++;
      this.record.log('held_back_hourly', 'info', { maxSessionsPerHour, heldBack: this.heldBack.hourlyLimit }, 'continuous profiling: a trigger crossed but maxSessionsPerHour sessions already ran in the last hour; no session started');
      return false;
    }
    return true;
  }

  started(cause: TriggerCause, at: number): void {
    if (isAutomatic(cause)) this.automaticStarts.push(at);
  }

  ended(cause: TriggerCause, at: number): void {
    if (isAutomatic(cause)) this.lastAutomaticEnd = at;
  }
}
