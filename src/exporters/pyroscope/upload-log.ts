/**
 * What the Pyroscope exporter says: failed attempts, dropped profiles, the close summary and
 * internal errors, rate-limited per kind of failure (once a minute, with a suppressed count),
 * every text through the redactor, and a broken logger never breaking an upload.
 */
import { LogLimiter } from '../../log-limiter';
import type { MinimalLogger } from '../../types';
import { errorMessage, type AttemptOutcome } from './attempt';
import type { PendingUpload, Settlement } from './upload-queue';

export interface UploadLogOptions {
  logger: MinimalLogger;
  redact: (text: string) => string;
  /** the server as logs may show it (no credentials) */
  endpoint: string;
  intervalMs: number;
  now: () => number;
}

export class UploadLog {
  readonly #options: UploadLogOptions;
  readonly #limiter: LogLimiter;

  constructor(options: UploadLogOptions) {
    this.#options = options;
    this.#limiter = new LogLimiter({ intervalMs: options.intervalMs, now: options.now });
  }

  failure(item: PendingUpload, outcome: AttemptOutcome, retryInMs: number | undefined): void {
    const kind = outcome.status !== undefined ? `http_${outcome.status}` : outcome.errorCode ?? 'error';
    const suppressed = this.#limiter.admit(kind);
    if (suppressed === undefined) return;
    const what = outcome.status !== undefined ? `was answered HTTP ${outcome.status}` : `failed (${outcome.errorCode})`;
    const next = retryInMs !== undefined ? `retrying in ${retryInMs} ms` : 'profile dropped';
    const reason = outcome.message ? `: ${outcome.message}` : '';
    this.#log(
      'warn',
      {
        status: outcome.status,
        code: outcome.errorCode,
        reason: outcome.message,
        endpoint: this.#options.endpoint,
        profileKind: item.profile.kind,
        attempt: item.attempts,
        retryInMs,
        suppressed,
      },
      `Pyroscope upload ${what}${reason} (${next}; ${suppressed} similar warnings suppressed)`,
    );
  }

  drop(how: Settlement, dropped: number, limits: { maxPendingUploads: number; maxPendingBytes: number }): void {
    if (how !== 'evicted' && how !== 'invalid') return; // failures are logged by failure(), close by its summary
    const kind = how === 'evicted' ? 'queue_full' : 'invalid_profile';
    const suppressed = this.#limiter.admit(kind);
    if (suppressed === undefined) return;
    const message =
      how === 'evicted'
        ? `Pyroscope upload queue full (maxPendingUploads ${limits.maxPendingUploads}, maxPendingBytes ${limits.maxPendingBytes}): dropped the oldest profile`
        : 'Pyroscope exporter got a profile without a Buffer body: dropped it';
    this.#log('warn', { dropped, suppressed }, `${message} (${suppressed} similar warnings suppressed)`);
  }

  closeSummary(pendingAtClose: number, droppedAtClose: number): void {
    if (droppedAtClose === 0) return;
    this.#log(
      'warn',
      { pendingAtClose, dropped: droppedAtClose, suppressedWarnings: this.#limiter.suppressedCounts() },
      `Pyroscope exporter closed with ${droppedAtClose} of ${pendingAtClose} pending profiles not delivered`,
    );
  }

  unexpected(err: unknown): void {
    this.#log('error', { err: this.#options.redact(errorMessage(err)) }, 'Pyroscope exporter internal error');
  }

  #log(level: 'warn' | 'error', obj: Record<string, unknown>, msg: string): void {
    try {
      this.#options.logger[level](obj, this.#options.redact(msg));
    } catch {
      // a broken logger must not break uploads
    }
  }
}
