/**
 * One HTTP attempt: POST, read at most a bounded part of the answer, and always settle, at the
 * latest at the deadline; then what the outcome means (success, retry, the message to log).
 */
import http from 'node:http';
import https from 'node:https';

/** bytes of a response body kept for the log (the rest is read and discarded) */
const MAX_KEPT_RESPONSE_BYTES = 4 * 1024;
/** bytes of a response body read at most before giving up on the connection */
const MAX_READ_RESPONSE_BYTES = 256 * 1024;
/** characters of the server's message put in logs and `lastError` */
const MAX_SERVER_MESSAGE_CHARS = 200;

/** How one attempt ended: `status` when the server answered, `errorCode` otherwise. */
export interface AttemptOutcome {
  status?: number;
  errorCode?: string;
  /** short reason: the server's message or the network error's */
  message: string;
  retryAfterMs?: number;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface AttemptRequest {
  url: URL;
  headers: http.OutgoingHttpHeaders;
  body: Buffer;
  agent: http.Agent;
  timeoutMs: number;
  timers: Timers;
}

export interface InFlightAttempt {
  result: Promise<AttemptOutcome>;
  /** end the attempt now (close deadline); resolves `result` with errorCode ABORTED */
  abort(): void;
}

/** POST once. The promise always resolves, at the latest after `timeoutMs`. */
export function postOnce(request: AttemptRequest): InFlightAttempt {
  let settle!: (outcome: AttemptOutcome) => void;
  const result = new Promise<AttemptOutcome>((resolve) => (settle = resolve));
  let done = false;
  let req: http.ClientRequest | undefined;
  let responseComplete = false;

  const finish = (outcome: AttemptOutcome): void => {
    if (done) return;
    done = true;
    request.timers.clearTimeout(timer);
    // an unfinished exchange leaves the socket in an unknown state: never reuse it
    if (!responseComplete) req?.destroy();
    settle(outcome);
  };
  const timer = request.timers.setTimeout(
    () => finish({ errorCode: 'UPLOAD_TIMEOUT', message: `no complete answer within ${request.timeoutMs} ms` }),
    request.timeoutMs,
  );

  try {
    const transport = request.url.protocol === 'https:' ? https : http;
    req = transport.request(request.url, { method: 'POST', headers: request.headers, agent: request.agent });
  } catch (err) {
    // e.g. a header value with a newline: the request cannot be built, retrying will not help
    finish({ errorCode: 'INVALID_REQUEST', message: errorMessage(err) });
    return { result, abort: () => undefined };
  }
  req.on('error', (err) => finish({ errorCode: errorCode(err), message: errorMessage(err) }));
  req.on('response', (res) =>
    readResponse(res, (text, complete) => {
      responseComplete = complete;
      finish({ status: res.statusCode ?? 0, message: serverMessage(text), retryAfterMs: retryAfterMs(res) });
    }),
  );
  req.end(request.body);
  return { result, abort: () => finish({ errorCode: 'ABORTED', message: 'aborted at the close deadline' }) };
}

/** Read a response body, keeping its first bytes; calls back once with the text and whether it ended normally. */
function readResponse(res: http.IncomingMessage, onDone: (text: string, complete: boolean) => void): void {
  const kept: Buffer[] = [];
  let keptBytes = 0;
  let readBytes = 0;
  let called = false;
  const done = (complete: boolean): void => {
    if (called) return;
    called = true;
    onDone(Buffer.concat(kept).toString('utf8'), complete);
  };
  res.on('data', (chunk: Buffer) => {
    readBytes += chunk.length;
    if (keptBytes < MAX_KEPT_RESPONSE_BYTES) {
      const part = chunk.subarray(0, MAX_KEPT_RESPONSE_BYTES - keptBytes);
      kept.push(part);
      keptBytes += part.length;
    }
    if (readBytes > MAX_READ_RESPONSE_BYTES) {
      done(false);
      res.destroy();
    }
  });
  res.on('end', () => done(true));
  res.on('error', () => done(false));
  res.on('close', () => done(res.complete));
}

/** The server's message: `message` (and `code`) of a JSON body, else the text; one line, cut short. */
export function serverMessage(text: string): string {
  let message = text;
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === 'object' && 'message' in parsed && typeof parsed.message === 'string') {
      const code = 'code' in parsed && (typeof parsed.code === 'string' || typeof parsed.code === 'number');
      message = code ? `${String((parsed as { code: unknown }).code)}: ${parsed.message}` : parsed.message;
    }
  } catch {
    // not JSON: keep the text
  }
  // eslint-disable-next-line no-control-regex
  const oneLine = message.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return oneLine.length > MAX_SERVER_MESSAGE_CHARS ? `${oneLine.slice(0, MAX_SERVER_MESSAGE_CHARS)}...` : oneLine;
}

/** `Retry-After` in ms (seconds or HTTP date), if the server sent one. */
export function retryAfterMs(res: http.IncomingMessage): number | undefined {
  const header = res.headers['retry-after'];
  if (header === undefined) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'NETWORK_ERROR';
}

export function errorMessage(err: unknown): string {
  // not `instanceof Error`: errors from another realm (vm contexts, Jest) are errors too
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : String(err);
}

/** 5xx, 429 and network trouble may pass; anything else the server said will be said again. */
export function isRetryable(outcome: AttemptOutcome): boolean {
  if (outcome.status !== undefined) return outcome.status === 429 || outcome.status >= 500;
  return outcome.errorCode !== 'INVALID_REQUEST' && outcome.errorCode !== 'ABORTED';
}

export function isSuccess(outcome: AttemptOutcome): boolean {
  return outcome.status !== undefined && outcome.status >= 200 && outcome.status < 300;
}

export function describeOutcome(outcome: AttemptOutcome): string {
  const head = outcome.status !== undefined ? `HTTP ${outcome.status}` : outcome.errorCode ?? 'error';
  return outcome.message ? `${head}: ${outcome.message}` : head;
}

// ---------------------------------------------------------------------------------------------
// The queue of profiles waiting for upload
// ---------------------------------------------------------------------------------------------
