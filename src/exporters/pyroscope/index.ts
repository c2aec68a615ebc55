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
 *
 * This file owns the upload loop (one attempt at a time, retries, the close deadline); next to
 * it: upload-queue.ts (what waits, its bounds and counters), upload-log.ts (what is said),
 * timers.ts, attempt.ts (one HTTP attempt), request.ts (URL and headers), redact.ts, address.ts.
 */
import http from 'node:http';
import https from 'node:https';
import { ProfilingOptionError } from '../../errors';
import { DEFAULT_LOG_INTERVAL_MS } from '../../log-limiter';
import type { EncodedProfile, Exporter, ExporterStats } from '../../types';
import { describeOutcome, isRetryable, isSuccess, postOnce, type AttemptOutcome, type InFlightAttempt, type Timers } from './attempt';
import type { PyroscopeExporterOptions } from './options';
import { makeRedactor } from './redact';
import { authorizationHeader, ingestName, ingestUrl, parseEndpoint, requestHeaders, type Credentials, type IngestEndpoint } from './request';
import { OwnedTimers } from './timers';
import { UploadLog } from './upload-log';
import { ExportBatch, UploadQueue, type PendingUpload } from './upload-queue';

export { insecureAuthProblem, isLoopbackHost, parseHttpUrl } from './address';
export { ingestName, ingestUrl } from './request';
export type { PyroscopeExporterOptions } from './options';

const DEFAULT_RETRY_BASE_DELAY_MS = 1_000;
const DEFAULT_RETRY_MAX_DELAY_MS = 30_000;

interface Limits {
  uploadTimeoutMs: number;
  maxUploadRetries: number;
  maxPendingUploads: number;
  maxPendingBytes: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
}

/** What an exporter is set up with; private to it: nothing here may reach JSON.stringify or a log. */
interface Settings {
  endpoint: IngestEndpoint;
  ingestName: string;
  credentials: Credentials;
  redact: (text: string) => string;
  limits: Limits;
  now: () => number;
  random: () => number;
  timers: Timers;
}

function settingsOf(options: PyroscopeExporterOptions): Settings {
  const endpoint = parseEndpoint(options.serverAddress);
  const ingest = ingestName(options.appName, options.tags);
  const credentials: Credentials = {
    authorization: authorizationHeader(options, endpoint),
    tenantID: options.tenantID,
    userHeaders: { ...options.headers },
  };
  const redact = makeRedactor(options, credentials);
  const timers: Timers = {
    setTimeout: options.setTimeout ?? ((fn, ms) => setTimeout(fn, ms)),
    clearTimeout: options.clearTimeout ?? ((handle) => clearTimeout(handle as NodeJS.Timeout)),
  };
  checkLimits(options);
  const limits: Limits = {
    uploadTimeoutMs: options.uploadTimeoutMs,
    maxUploadRetries: Math.max(0, Math.floor(options.maxUploadRetries)),
    maxPendingUploads: Math.max(1, Math.floor(options.maxPendingUploads)),
    maxPendingBytes: options.maxPendingBytes,
    retryBaseDelayMs: options.retryBaseDelayMs ?? DEFAULT_RETRY_BASE_DELAY_MS,
    retryMaxDelayMs: options.retryMaxDelayMs ?? DEFAULT_RETRY_MAX_DELAY_MS,
  };
  return { endpoint, ingestName: ingest, credentials, redact, limits, now: options.now ?? (() => Date.now()), random: options.random ?? (() => Math.random()), timers };
}

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

/** Wait before the next attempt of a profile that failed `attempts` times; undefined when it gets none. */
function backoffMs(attempts: number, outcome: AttemptOutcome, limits: Limits, random: () => number): number | undefined {
  if (!isRetryable(outcome) || attempts > limits.maxUploadRetries) return undefined;
  const { retryBaseDelayMs, retryMaxDelayMs } = limits;
  const exponential = Math.min(retryMaxDelayMs, retryBaseDelayMs * 2 ** (attempts - 1));
  const jittered = exponential * (0.5 + 0.5 * random()); // "equal jitter": spread, never below half
  return Math.round(Math.min(retryMaxDelayMs, Math.max(jittered, outcome.retryAfterMs ?? 0)));
}

/**
 * long: the upload loop, its retries and the close deadline share the attempt in flight, the
 * deadline and the stopped flag; what waits, what is said and the timers are rooms of their own
 */
export class PyroscopeExporter implements Exporter {
  readonly name = 'pyroscope';

  readonly #settings: Settings;
  readonly #agent: http.Agent;
  readonly #log: UploadLog;
  readonly #timers: OwnedTimers;
  readonly #queue: UploadQueue;
  #inFlight: { item: PendingUpload; attempt: InFlightAttempt } | undefined;
  #worker: Promise<void> | undefined;
  /** set by close(): time after which nothing is attempted */
  #deadline: number | undefined;
  #stopped = false;
  #closing: Promise<void> | undefined;
  #lastError: string | undefined;

  constructor(options: PyroscopeExporterOptions) {
    const settings = settingsOf(options);
    const { endpoint, limits } = settings;
    this.#settings = settings;
    const agentOptions = { keepAlive: true, maxSockets: 1 };
    this.#agent = endpoint.url.protocol === 'https:' ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    const intervalMs = options.logIntervalMs ?? DEFAULT_LOG_INTERVAL_MS;
    this.#log = new UploadLog({ logger: options.logger, redact: settings.redact, endpoint: endpoint.display, intervalMs, now: settings.now });
    this.#timers = new OwnedTimers(settings.timers);
    this.#queue = new UploadQueue({
      maxPendingUploads: limits.maxPendingUploads,
      maxPendingBytes: limits.maxPendingBytes,
      onDropped: (how) => this.#log.drop(how, this.#queue.counters.dropped, limits),
      onEvicted: () => this.#timers.wake(), // the worker may be waiting on a profile that is gone
    });
  }

  /** Queue profiles for upload. Resolves when each is sent or given up on; never rejects. */
  export(profiles: readonly EncodedProfile[]): Promise<void> {
    return new Promise<void>((resolve) => {
      try {
        const list = Array.isArray(profiles) ? profiles : [];
        const batch = new ExportBatch(list.length, resolve);
        for (const profile of list) this.#queue.add(profile, batch, this.#deadline !== undefined);
        this.#startWorker();
      } catch (err) {
        // a throw here would reject the promise: log it and let the caller go on
        this.#log.unexpected(err);
        resolve();
      }
    });
  }

  /**
   * Deliver what is pending for at most `timeoutMs`, then abort what is in flight, drop (and
   * count) what is left and release every timer and socket. Idempotent.
   */
  close(timeoutMs: number): Promise<void> {
    this.#closing ??= this.#shutdown(timeoutMs).catch((err) => this.#log.unexpected(err));
    return this.#closing;
  }

  stats(): ExporterStats {
    const { uploadsOk, uploadsFailed, bytesSent, dropped, pending } = this.#queue.counters;
    const stats: ExporterStats = { uploadsOk, uploadsFailed, bytesSent, dropped, pending };
    if (this.#lastError !== undefined) stats.lastError = this.#lastError;
    return stats;
  }

  #startWorker(): void {
    if (this.#worker !== undefined || this.#stopped || this.#queue.size === 0) return;
    this.#worker = this.#work()
      .catch((err) => this.#log.unexpected(err))
      .finally(() => {
        this.#worker = undefined;
        this.#startWorker(); // profiles may have arrived as the loop was ending
      });
  }

  /** Upload the oldest profile, one at a time, until none is left or the exporter stops. */
  async #work(): Promise<void> {
    while (!this.#stopped) {
      const head = this.#queue.head;
      if (head === undefined) return;
      const waitMs = head.notBefore - this.#settings.now();
      if (waitMs > 0) {
        if (this.#pastDeadline(head.notBefore)) {
          this.#queue.settle(this.#queue.shift() as PendingUpload, 'closed');
        } else if ((await this.#timers.sleep(waitMs)) === 'elapsed' && this.#queue.head === head) {
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
    if (timeoutMs <= 0) return this.#queue.settle(item, 'closed');
    item.attempts += 1;
    const { endpoint, ingestName: name, credentials, timers } = this.#settings;
    const attempt = postOnce({
      url: ingestUrl(endpoint.url, name, item.profile),
      headers: requestHeaders(credentials, item.bytes),
      body: item.profile.body,
      agent: this.#agent,
      timeoutMs,
      timers,
    });
    this.#inFlight = { item, attempt };
    const outcome = await attempt.result;
    this.#inFlight = undefined;
    if (item.settled) return; // dropped at the close deadline while in flight
    if (isSuccess(outcome)) return this.#queue.settle(item, 'sent');
    this.#onFailure(item, outcome);
  }

  #onFailure(item: PendingUpload, outcome: AttemptOutcome): void {
    const { redact, limits, random, now } = this.#settings;
    const safe: AttemptOutcome = { ...outcome, message: redact(outcome.message) };
    this.#lastError = redact(describeOutcome(safe));
    const delay = this.#stopped ? undefined : backoffMs(item.attempts, safe, limits, random);
    const retryInMs = delay !== undefined && !this.#pastDeadline(now() + delay) ? delay : undefined;
    this.#log.failure(item, safe, retryInMs);
    if (retryInMs === undefined) return this.#queue.settle(item, 'failed');
    item.notBefore = now() + retryInMs;
    this.#queue.putBack(item);
  }

  #attemptTimeoutMs(): number {
    const { uploadTimeoutMs } = this.#settings.limits;
    return this.#deadline === undefined ? uploadTimeoutMs : Math.min(uploadTimeoutMs, Math.floor(this.#deadline - this.#settings.now()));
  }

  #pastDeadline(time: number): boolean {
    return this.#deadline !== undefined && time >= this.#deadline;
  }

  async #shutdown(timeoutMs: number): Promise<void> {
    const budgetMs = Number.isFinite(timeoutMs) && timeoutMs > 0 ? timeoutMs : 0;
    this.#deadline = this.#settings.now() + budgetMs;
    const { counters } = this.#queue;
    const pendingAtClose = counters.pending;
    const droppedBefore = counters.dropped;
    this.#timers.wake(); // re-check waits against the deadline
    this.#startWorker();
    await new Promise<void>((resolve) => {
      // kept ref'd on purpose: close() must settle even when nothing else holds the event loop
      this.#timers.scheduleRef(resolve, budgetMs);
      this.#whenIdle().then(resolve, resolve);
    });
    this.#stop();
    this.#log.closeSummary(pendingAtClose, counters.dropped - droppedBefore);
  }

  async #whenIdle(): Promise<void> {
    while (this.#worker !== undefined) await this.#worker;
  }

  /** The deadline: abort the attempt in flight, drop what waits, release timers and sockets. */
  #stop(): void {
    this.#stopped = true;
    this.#timers.wake();
    const inFlight = this.#inFlight;
    if (inFlight !== undefined) {
      this.#queue.settle(inFlight.item, 'closed');
      inFlight.attempt.abort();
    }
    this.#queue.drain('closed');
    this.#timers.clearAll();
    this.#agent.destroy();
  }
}
