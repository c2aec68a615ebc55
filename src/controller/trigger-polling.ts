/**
 * Trigger polling: when the triggers are read (FIRST_CHECK_DELAY_MS after ready, then every
 * `checkInterval`), their readings (kept in the record for stats()), and which one crossed its
 * threshold first. What a crossing starts is the controller's decision (onCrossing).
 */
import { READING_NAMES, type Trigger, type TriggerSignal } from '../triggers';
import type { ControllerRecord } from './stats';

/** The first threshold check after ready: soon, but past the start-up burst. */
export const FIRST_CHECK_DELAY_MS = 1000;

export const SIGNAL_NAMES: Record<TriggerSignal, string> = {
  cpu: 'CPU usage',
  eventLoop: 'event-loop utilization',
  heap: 'heap usage',
  memory: 'memory usage',
};

export interface Crossing {
  signal: TriggerSignal;
  value: number;
  threshold: number;
  /** what the reading was made of (Trigger.explain) */
  detail?: string;
}

export class TriggerPolling {
  private checkTimer?: NodeJS.Timeout;
  private firstCheckTimer?: NodeJS.Timeout;
  private checking = false;
  private stopped = false;

  constructor(
    /** read at every check, in this order: the first at or above its threshold is the crossing */
    private readonly triggers: readonly Trigger[],
    private readonly checkInterval: number,
    private readonly record: ControllerRecord,
    private readonly onCrossing: (crossing: Crossing) => void,
  ) {}

  get running(): boolean {
    return this.checkTimer !== undefined;
  }

  /** Arms the checks. They run in continuous mode too: they keep the readings current. */
  start(): void {
    this.checkTimer = setInterval(() => void this.check(), this.checkInterval);
    this.checkTimer.unref();
    if (this.checkInterval > FIRST_CHECK_DELAY_MS) {
      this.firstCheckTimer = setTimeout(() => void this.check(), FIRST_CHECK_DELAY_MS);
      this.firstCheckTimer.unref();
    }
  }

  /** For good: later checks do nothing. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.checkTimer);
    clearTimeout(this.firstCheckTimer);
    this.checkTimer = this.firstCheckTimer = undefined;
  }

  /** Every trigger takes its baseline now, so the next check compares what came after. */
  async restartBaselines(): Promise<void> {
    for (const trigger of this.triggers) {
      try {
        await trigger.restart?.();
      } catch (error) {
        this.record.error(`${trigger.signal}_reading`, `could not read ${SIGNAL_NAMES[trigger.signal]}`, error);
      }
    }
  }

  /** Read every trigger; hand the first crossing to onCrossing. Never rejects; one check at a time. */
  async check(): Promise<void> {
    if (this.checking || this.stopped) return;
    this.checking = true;
    try {
      const crossing = await this.readTriggers();
      if (crossing) this.onCrossing(crossing);
    } finally {
      this.checking = false;
    }
  }

  /** Every trigger's reading, kept for stats(); the first that crossed its threshold. */
  private async readTriggers(): Promise<Crossing | undefined> {
    let first: Crossing | undefined;
    for (const trigger of this.triggers) {
      const { signal, threshold } = trigger;
      let value: number;
      try {
        value = await trigger.read();
      } catch (error) {
        this.record.error(`${signal}_reading`, `could not read ${SIGNAL_NAMES[signal]}`, error);
        continue;
      }
      this.record.readings[READING_NAMES[signal]] = value;
      if (first === undefined && threshold !== false && value >= threshold) first = { signal, value, threshold, detail: trigger.explain?.() };
    }
    return first;
  }
}
