/**
 * The Pyroscope exporter's waiting room: profiles waiting for their upload, oldest first,
 * bounded by `maxPendingUploads` and `maxPendingBytes` (past either, the oldest are dropped),
 * and the one place every profile leaves through (`settle`: sent, or dropped and why), which
 * keeps the counters behind stats() and resolves the `export()` call the profile came with.
 */
import type { EncodedProfile } from '../../types';

/** Resolves the promise of one `export()` call once each of its profiles is settled. */
export class ExportBatch {
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

export interface PendingUpload {
  readonly profile: EncodedProfile;
  readonly bytes: number;
  readonly batch: ExportBatch;
  /** attempts made so far */
  attempts: number;
  /** not before this time (ms, exporter clock): set while waiting for a retry */
  notBefore: number;
  settled: boolean;
}

export type Settlement = 'sent' | 'failed' | 'evicted' | 'closed' | 'invalid';

export interface UploadQueueOptions {
  maxPendingUploads: number;
  maxPendingBytes: number;
  /** a profile was dropped (not sent), counted already */
  onDropped(how: Settlement): void;
  /** profiles were evicted: a wait for one of them may be over */
  onEvicted(): void;
}

export class UploadQueue {
  readonly counters = { uploadsOk: 0, uploadsFailed: 0, bytesSent: 0, dropped: 0, pending: 0, pendingBytes: 0 };
  readonly #items: PendingUpload[] = [];
  readonly #options: UploadQueueOptions;

  constructor(options: UploadQueueOptions) {
    this.#options = options;
  }

  /** The oldest waiting profile. */
  get head(): PendingUpload | undefined {
    return this.#items[0];
  }

  get size(): number {
    return this.#items.length;
  }

  /** A new profile; settled at once when it has no body, the exporter is closing or it alone is over the byte bound. */
  add(profile: EncodedProfile, batch: ExportBatch, closing: boolean): void {
    const bytes = profile?.body?.length;
    const item: PendingUpload = { profile, bytes: bytes ?? 0, batch, attempts: 0, notBefore: 0, settled: false };
    this.counters.pending += 1;
    this.counters.pendingBytes += item.bytes;
    if (!Buffer.isBuffer(profile?.body)) return this.settle(item, 'invalid');
    if (closing) return this.settle(item, 'closed');
    if (item.bytes > this.#options.maxPendingBytes) return this.settle(item, 'evicted');
    this.#items.push(item);
    this.#evictOverflow();
  }

  /** Takes the oldest profile out (for its attempt). */
  shift(): PendingUpload | undefined {
    return this.#items.shift();
  }

  /** A profile to retry: still the oldest, it goes first. */
  putBack(item: PendingUpload): void {
    this.#items.unshift(item);
    this.#evictOverflow();
  }

  /** Settles every waiting profile the same way (close). */
  drain(how: Settlement): void {
    for (const item of this.#items.splice(0)) this.settle(item, how);
  }

  /** The one place a profile leaves the exporter: counts it and resolves its export() promise. */
  settle(item: PendingUpload, how: Settlement): void {
    if (item.settled) return;
    item.settled = true;
    this.counters.pending -= 1;
    this.counters.pendingBytes -= item.bytes;
    if (how === 'sent') {
      this.counters.uploadsOk += 1;
      this.counters.bytesSent += item.bytes;
    } else {
      this.counters.dropped += 1;
      if (item.attempts > 0) this.counters.uploadsFailed += 1;
      this.#options.onDropped(how);
    }
    item.batch.settleOne();
  }

  /** Drop the oldest waiting profiles until the count and byte bounds hold again. */
  #evictOverflow(): void {
    let evicted = 0;
    const { maxPendingUploads, maxPendingBytes } = this.#options;
    while (this.#items.length > 0 && (this.counters.pending > maxPendingUploads || this.counters.pendingBytes > maxPendingBytes)) {
      this.settle(this.#items.shift() as PendingUpload, 'evicted');
      evicted += 1;
    }
    if (evicted > 0) this.#options.onEvicted();
  }
}
