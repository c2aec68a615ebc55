import type { MinimalLogger } from '../../types';

export interface PyroscopeExporterOptions {
  /** http(s) URL of the Pyroscope server, may carry a path prefix (`https://host/pyroscope`) */
  serverAddress: string;
  appName: string;
  tags: Record<string, string>;
  authToken?: string;
  basicAuthUser?: string;
  basicAuthPassword?: string;
  tenantID?: string;
  headers: Record<string, string>;
  uploadTimeoutMs: number;
  maxUploadRetries: number;
  maxPendingUploads: number;
  maxPendingBytes: number;
  logger: MinimalLogger;
  /** first retry waits about this long, doubling each time; default 1000 ms */
  retryBaseDelayMs?: number;
  /** longest wait between two attempts (also caps `Retry-After`); default 30 000 ms */
  retryMaxDelayMs?: number;
  /** minimum time between two warnings of the same kind; default one minute */
  logIntervalMs?: number;
  /** injectable for tests */
  now?: () => number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  /** jitter source in [0, 1) */
  random?: () => number;
}
