/**
 * Ships profiles to Grafana Pyroscope's ingest endpoint (see shared notes, "Pyroscope's ingest API"):
 *
 *   POST {serverAddress}/ingest?name=APP{k=v,...}&from=UNIX_S&until=UNIX_S&format=pprof&spyName=nodespy
 *   body: gzipped pprof, content-type: application/octet-stream
 *
 * Built to survive a misbehaving server without hurting the host:
 * - `export()` only enqueues; uploads run one at a time in the background and never throw.
 * - Every attempt has a hard deadline (`uploadTimeoutMs`) covering connect, send and response.
 * - 5xx, 429 and network errors are retried with exponential backoff and jitter, at most
 *   `maxUploadRetries` times; other answers (4xx) are final.
 * - What waits is bounded by `maxPendingUploads` and `maxPendingBytes`: the oldest go first,
 *   and every profile given up on is counted in `stats().dropped`.
 * - Warnings are rate-limited per kind of failure (once a minute, with a suppressed count).
 * - Credentials live only in private fields; logs, errors and stats are scrubbed of them.
 */
import http from 'node:http';
import https from 'node:https';
import { ProfilingOptionError } from '../../errors';
import { LogLimiter, DEFAULT_LOG_INTERVAL_MS } from '../../log-limiter';
import type { EncodedProfile, Exporter, ExporterStats, MinimalLogger } from '../../types';
import { describeOutcome, errorMessage, isRetryable, isSuccess, postOnce, type AttemptOutcome, type InFlightAttempt, type Timers } from './attempt';
import type { PyroscopeExporterOptions } from './options';
import { makeRedactor } from './redact';
import { authorizationHeader, ingestName, ingestUrl, parseEndpoint, requestHeaders, type Credentials, type IngestEndpoint } from './request';

export { insecureAuthProblem, isLoopbackHost, parseHttpUrl } from './address';
export { ingestName, ingestUrl } from './request';
export type { PyroscopeExporterOptions } from './options';

const DEFAULT_RETRY_BASE_DELAY_MS = 1_000;
const DEFAULT_RETRY_MAX_DELAY_MS = 30_000;


/** Resolves the promise of one `export()` call once each of its profiles is settled. */
class ExportBatch {
  #remaining: number;
  readonly #resolve: () => void;

  constructor(size: number, resolve: () => void) {
    this.#remaining = size;
    this.#resolve = resolve;
    if (size === 0) resolve();
  }

  settleOne(): void {
    this.#remaining -= 1;
    if (this.#remaining === 0) this.#resolve();
  }
}

interface PendingUpload {
  readonly profile: EncodedProfile;
  readonly bytes: number;
  readonly batch: ExportBatch;
  /** attempts made so far */
  attempts: number;
  /** not before this time (ms, exporter clock): set while waiting for a retry */
  notBefore: number;
  settled: boolean;
}

type Settlement = 'sent' | 'failed' | 'evicted' | 'closed' | 'invalid';

// ---------------------------------------------------------------------------------------------
// The exporter
// ---------------------------------------------------------------------------------------------

/** The options module validates these already; a wrong number here would silently drop everything. */
function checkLimits(options: PyroscopeExporterOptions): void {
  const positive: Array<[string, number]> = [
    ['uploadTimeout', options.uploadTimeoutMs],
    ['maxPendingUploads', options.maxPendingUploads],
    ['maxPendingBytes', options.maxPendingBytes],
  ];
  for (const [option, value] of positive) {
    if (!(typeof value === 'number' && value > 0)) throw new ProfilingOptionError(option, value, 'a positive number');
  }
  const retries = options.maxUploadRetries;
  if (!(typeof retries === 'number' && retries >= 0 && Number.isFinite(retries))) {
    throw new ProfilingOptionError('maxUploadRetries', retries, 'a number >= 0');
  }
}

export class PyroscopeExporter implements Exporter {
  readonly name = 'pyroscope';

  // configuration (private: nothing here may reach JSON.stringify or a log)
  readonly #endpoint: IngestEndpoint;
  readonly #ingestName: string;
  readonly #credentials: Credentials;
  readonly #redact: (text: string) => string;
  readonly #agent: http.Agent;
  readonly #logger: MinimalLogger;
  readonly #limiter: LogLimiter;
  readonly #limits: {
    uploadTimeoutMs: number;
    maxUploadRetries: number;
    maxPendingUploads: number;
    maxPendingBytes: number;
    retryBaseDelayMs: number;
    retryMaxDelayMs: number;
  };
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #timers: Timers;

  // state
  readonly #queue: PendingUpload[] = [];
  readonly #liveTimers = new Set<unknown>();
  #inFlight: { item: PendingUpload; attempt: InFlightAttempt } | undefined;
  #worker: Promise<void> | undefined;
  #wakeWorker: (() => void) | undefined;
  /** set by close(): time after which nothing is attempted */
  #deadline: number | undefined;
  #stopped = false;
  #closing: Promise<void> | undefined;
  #counters = { uploadsOk: 0, uploadsFailed: 0, bytesSent: 0, dropped: 0, pending: 0, pendingBytes: 0 };
  #lastError: string | undefined;

  constructor(options: PyroscopeExporterOptions) {
    this.#endpoint = parseEndpoint(options.serverAddress);
    this.#ingestName = ingestName(options.appName, options.tags);
    this.#credentials = {
      authorization: authorizationHeader(options, this.#endpoint),
      tenantID: options.tenantID,
      userHeaders: { ...options.headers },
    };
    this.#redact = makeRedactor(options, this.#credentials);
    const agentOptions = { keepAlive: true, maxSockets: 1 };
    this.#agent = this.#endpoint.url.protocol === 'https:' ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    this.#logger = options.logger;
    this.#now = options.now ?? (() => Date.now());
    this.#random = options.random ?? (() => Math.random());
    this.#timers = {
      setTimeout: options.setTimeout ?? ((fn, ms) => setTimeout(fn, ms)),
      clearTimeout: options.clearTimeout ?? ((handle) => clearTimeout(handle as NodeJS.Timeout)),
    };
    this.#limiter = new LogLimiter({ intervalMs: options.logIntervalMs ?? DEFAULT_LOG_INTERVAL_MS, now: this.#now });
    checkLimits(options);
    this.#limits = {
      uploadTimeoutMs: options.uploadTimeoutMs,
      maxUploadRetries: Math.max(0, Math.floor(options.maxUploadRetries)),
      maxPendingUploads: Math.max(1, Math.floor(options.maxPendingUploads)),
      maxPendingBytes: options.maxPendingBytes,
      retryBaseDelayMs: options.retryBaseDelayMs ?? DEFAULT_RETRY_BASE_DELAY_MS,
      retryMaxDelayMs: options.retryMaxDelayMs ?? DEFAULT_RETRY_MAX_DELAY_MS,
    };
  }

  /** Queue profiles for upload. Resolves when each is sent or given up on; never rejects. */
  export(profiles: readonly EncodedProfile[]): Promise<void> {
    return new Promise<void>((resolve) => {
      try {
        const list = Array.isArray(profiles) ? profiles : [];
        const batch = new ExportBatch(list.length, resolve);
        for (const profile of list) this.#enqueue(profile, batch);
        this.#startWorker();
      } catch (err) {
        // a throw here would reject the promise: log it and let the caller go on
        this.#logUnexpected(err);
        resolve();
      }
    });
  }

  /**
   * Deliver what is pending for at most `timeoutMs`, then abort what is in flight, drop (and
   * count) what is left and release every timer and socket. Idempotent.
   */
  close(timeoutMs: number): Promise<void> {
    this.#closing ??= this.#shutdown(timeoutMs).catch((err) => this.#logUnexpected(err));
    return this.#closing;
  }

  stats(): ExporterStats {
    const { uploadsOk, uploadsFailed, bytesSent, dropped, pending } = this.#counters;
    const stats: ExporterStats = { uploadsOk, uploadsFailed, bytesSent, dropped, pending };
    if (this.#lastError !== undefined) stats.lastError = this.#lastError;
    return stats;
  }

  // --- queueing -------------------------------------------------------------------------------

  #enqueue(profile: EncodedProfile, batch: ExportBatch): void {
    const bytes = profile?.body?.length;
    const item: PendingUpload = { profile, bytes: bytes ?? 0, batch, attempts: 0, notBefore: 0, settled: false };
    this.#counters.pending += 1;
    this.#counters.pendingBytes += item.bytes;
    if (!Buffer.isBuffer(profile?.body)) return this.#settle(item, 'invalid');
    if (this.#deadline !== undefined) return this.#settle(item, 'closed');
    if (item.bytes > this.#limits.maxPendingBytes) return this.#settle(item, 'evicted');
    this.#queue.push(item);
    this.#evictOverflow();
  }

  /** Drop the oldest waiting profiles until the count and byte bounds hold again. */
  #evictOverflow(): void {
    let evicted = 0;
    while (
      this.#queue.length > 0 &&
      (this.#counters.pending > this.#limits.maxPendingUploads ||
        this.#counters.pendingBytes > this.#limits.maxPendingBytes)
    ) {
      this.#settle(this.#queue.shift() as PendingUpload, 'evicted');
      evicted += 1;
    }
    if (evicted > 0) this.#wakeWorker?.(); // it may be waiting on a profile that is gone
  }

  /** The one place a profile leaves the exporter: counts it and resolves its export() promise. */
  #settle(item: PendingUpload, how: Settlement): void {
    if (item.settled) return;
    item.settled = true;
    this.#counters.pending -= 1;
    this.#counters.pendingBytes -= item.bytes;
    if (how === 'sent') {
      this.#counters.uploadsOk += 1;
      this.#counters.bytesSent += item.bytes;
    } else {
      this.#counters.dropped += 1;
      if (item.attempts > 0) this.#counters.uploadsFailed += 1;
      this.#warnDrop(how);
    }
    item.batch.settleOne();
  }

  // --- the background worker ------------------------------------------------------------------

  #startWorker(): void {
    if (this.#worker !== undefined || this.#stopped || this.#queue.length === 0) return;
    this.#worker = this.#work()
      .catch((err) => this.#logUnexpected(err))
      .finally(() => {
        this.#worker = undefined;
        this.#startWorker(); // profiles may have arrived as the loop was ending
      });
  }

  /** Upload the oldest profile, one at a time, until none is left or the exporter stops. */
  async #work(): Promise<void> {
    while (!this.#stopped) {
      const head = this.#queue[0];
      if (head === undefined) return;
      const waitMs = head.notBefore - this.#now();
      if (waitMs > 0) {
        if (this.#pastDeadline(head.notBefore)) {
          this.#settle(this.#queue.shift() as PendingUpload, 'closed');
        } else if ((await this.#sleep(waitMs)) === 'elapsed' && this.#queue[0] === head) {
          head.notBefore = 0; // its wait is over, whatever an injected clock says
        }
        continue;
      }
      this.#queue.shift();
      await this.#attempt(head);
    }
  }

  async #attempt(item: PendingUpload): Promise<void> {
    const timeoutMs = this.#attemptTimeoutMs();
    if (timeoutMs <= 0) return this.#settle(item, 'closed');
    item.attempts += 1;
    const attempt = postOnce({
      url: ingestUrl(this.#endpoint.url, this.#ingestName, item.profile),
      headers: requestHeaders(this.#credentials, item.bytes),
      body: item.profile.body,
      agent: this.#agent,
      timeoutMs,
      timers: this.#timers,
    });
    this.#inFlight = { item, attempt };
    const outcome = await attempt.result;
    this.#inFlight = undefined;
    if (item.settled) return; // dropped at the close deadline while in flight
    if (isSuccess(outcome)) return this.#settle(item, 'sent');
    this.#onFailure(item, outcome);
  }

  #onFailure(item: PendingUpload, outcome: AttemptOutcome): void {
    const safe: AttemptOutcome = { ...outcome, message: this.#redact(outcome.message) };
    this.#lastError = this.#redact(describeOutcome(safe));
    const retryInMs = this.#retryDelayMs(item, safe);
    this.#warnFailure(item, safe, retryInMs);
    if (retryInMs === undefined) return this.#settle(item, 'failed');
    item.notBefore = this.#now() + retryInMs;
    this.#queue.unshift(item); // still the oldest: it goes first
    this.#evictOverflow();
  }

  /** Wait before the next attempt, or undefined when this profile gets no other attempt. */
  #retryDelayMs(item: PendingUpload, outcome: AttemptOutcome): number | undefined {
    if (this.#stopped || !isRetryable(outcome) || item.attempts > this.#limits.maxUploadRetries) return undefined;
    const { retryBaseDelayMs, retryMaxDelayMs } = this.#limits;
    const exponential = Math.min(retryMaxDelayMs, retryBaseDelayMs * 2 ** (item.attempts - 1));
    const jittered = exponential * (0.5 + 0.5 * this.#random()); // "equal jitter": spread, never below half
    const delay = Math.round(Math.min(retryMaxDelayMs, Math.max(jittered, outcome.retryAfterMs ?? 0)));
    return this.#pastDeadline(this.#now() + delay) ? undefined : delay;
  }

  #attemptTimeoutMs(): number {
    const { uploadTimeoutMs } = this.#limits;
    return this.#deadline === undefined
      ? uploadTimeoutMs
      : Math.min(uploadTimeoutMs, Math.floor(this.#deadline - this.#now()));
  }

  #pastDeadline(time: number): boolean {
    return this.#deadline !== undefined && time >= this.#deadline;
  }

  /** Sleep that close() and evictions can cut short ('woken'). */
  #sleep(ms: number): Promise<'elapsed' | 'woken'> {
    return new Promise((resolve) => {
      const timer = this.#schedule(() => {
        this.#wakeWorker = undefined;
        resolve('elapsed');
      }, ms);
      this.#wakeWorker = () => {
        this.#wakeWorker = undefined;
        this.#cancel(timer);
        resolve('woken');
      };
    });
  }

  // --- close ----------------------------------------------------------------------------------

  async #shutdown(timeoutMs: number): Promise<void> {
    const budgetMs = Number.isFinite(timeoutMs) && timeoutMs > 0 ? timeoutMs : 0;
    this.#deadline = this.#now() + budgetMs;
    const pendingAtClose = this.#counters.pending;
    const droppedBefore = this.#counters.dropped;
    this.#wakeWorker?.(); // re-check waits against the deadline
    this.#startWorker();
    await new Promise<void>((resolve) => {
      // kept ref'd on purpose: close() must settle even when nothing else holds the event loop
      const deadline = this.#timers.setTimeout(resolve, budgetMs);
      this.#liveTimers.add(deadline);
      this.#whenIdle().then(resolve, resolve);
    });
    this.#stop();
    this.#logCloseSummary(pendingAtClose, this.#counters.dropped - droppedBefore);
  }

  async #whenIdle(): Promise<void> {
    while (this.#worker !== undefined) await this.#worker;
  }

  /** The deadline: abort the attempt in flight, drop what waits, release timers and sockets. */
  #stop(): void {
    this.#stopped = true;
    this.#wakeWorker?.();
    const inFlight = this.#inFlight;
    if (inFlight !== undefined) {
      this.#settle(inFlight.item, 'closed');
      inFlight.attempt.abort();
    }
    for (const item of this.#queue.splice(0)) this.#settle(item, 'closed');
    for (const timer of this.#liveTimers) this.#timers.clearTimeout(timer);
    this.#liveTimers.clear();
    this.#agent.destroy();
  }

  // --- timers ---------------------------------------------------------------------------------

  /** A timer that does not keep the process alive and is cleared on close. */
  #schedule(fn: () => void, ms: number): unknown {
    const handle = this.#timers.setTimeout(() => {
      this.#liveTimers.delete(handle);
      fn();
    }, ms);
    (handle as { unref?: () => void } | null)?.unref?.();
    this.#liveTimers.add(handle);
    return handle;
  }

  #cancel(handle: unknown): void {
    this.#timers.clearTimeout(handle);
    this.#liveTimers.delete(handle);
  }

  // --- logging (never throws, never prints a secret) ------------------------------------------

  #warnFailure(item: PendingUpload, outcome: AttemptOutcome, retryInMs: number | undefined): void {
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
        endpoint: this.#endpoint.display,
        profileKind: item.profile.kind,
        attempt: item.attempts,
        retryInMs,
        suppressed,
      },
      `Pyroscope upload ${what}${reason} (${next}; ${suppressed} similar warnings suppressed)`,
    );
  }

  #warnDrop(how: Settlement): void {
    if (how !== 'evicted' && how !== 'invalid') return; // failures are logged by #warnFailure, close by its summary
    const kind = how === 'evicted' ? 'queue_full' : 'invalid_profile';
    const suppressed = this.#limiter.admit(kind);
    if (suppressed === undefined) return;
    const message =
      how === 'evicted'
        ? `Pyroscope upload queue full (maxPendingUploads ${this.#limits.maxPendingUploads}, maxPendingBytes ${this.#limits.maxPendingBytes}): dropped the oldest profile`
        : 'Pyroscope exporter got a profile without a Buffer body: dropped it';
    this.#log('warn', { dropped: this.#counters.dropped, suppressed }, `${message} (${suppressed} similar warnings suppressed)`);
  }

  #logCloseSummary(pendingAtClose: number, droppedAtClose: number): void {
    if (droppedAtClose === 0) return;
    this.#log(
      'warn',
      { pendingAtClose, dropped: droppedAtClose, suppressedWarnings: this.#limiter.suppressedCounts() },
      `Pyroscope exporter closed with ${droppedAtClose} of ${pendingAtClose} pending profiles not delivered`,
    );
  }

  #logUnexpected(err: unknown): void {
    this.#log('error', { err: this.#redact(errorMessage(err)) }, 'Pyroscope exporter internal error');
  }

  #log(level: 'warn' | 'error', obj: Record<string, unknown>, msg: string): void {
    try {
      this.#logger[level](obj, this.#redact(msg));
    } catch {
      // a broken logger must not break uploads
    }
  }
}
