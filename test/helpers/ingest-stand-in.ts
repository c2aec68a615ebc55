/**
 * A stand-in for Grafana Pyroscope's ingest endpoint, for tests.
 *
 * It listens on 127.0.0.1 (random port), accepts `POST …/ingest?name=…&from=…&until=…` (any path
 * is recorded; `/ingest` is what the exporter uses), records every request and decodes its body
 * when it is gzipped (gunzip + pprof-format `Profile.decode`). It can be told how to answer:
 *
 *   const ingest = await IngestStandIn.start();          // answers 200 by default
 *   ingest.respond({ kind: 'status', status: 422, body: '{"code":"invalid_argument","message":"bad"}' });
 *   ingest.respondOnce({ kind: 'status', status: 503 }); // next request only, then back to the default
 *   ingest.respond({ kind: 'slow', ms: 2000 });          // 200 after 2 s
 *   ingest.respond({ kind: 'hang' });                    // read the request, never answer
 *   ingest.respond({ kind: 'reset' });                   // read the request, destroy the socket
 *   const dead = await refusedUrl();                     // a URL where nothing listens
 *
 *   await ingest.waitForUploads(2, 5_000);               // 2xx-answered requests, decoded
 *   ingest.uploads[0].name, .from, .until, .headers, .profile, sampleTypeNames(...)
 *   await ingest.close();                                 // also destroys hung connections
 *
 * `requests` holds every request received (whatever the answer), `uploads` only those answered
 * 2xx: what the real server would have stored. Timers come from `node:timers`, so Jest fake
 * timers in a test do not freeze the stand-in.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as realSetTimeout, clearTimeout as realClearTimeout } from 'node:timers';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';

export type IngestBehavior =
  | { kind: 'ok' }
  | { kind: 'status'; status: number; body?: string; headers?: Record<string, string> }
  | { kind: 'slow'; ms: number; status?: number }
  | { kind: 'hang' }
  | { kind: 'reset' };

export interface RecordedRequest {
  method: string;
  /** path without the query */
  path: string;
  query: Record<string, string>;
  /** the `name`, `from` and `until` query parameters (from/until as numbers) */
  name: string | undefined;
  from: number | undefined;
  until: number | undefined;
  headers: http.IncomingHttpHeaders;
  /** raw body as received (gzipped pprof) */
  body: Buffer;
  /** decoded body, when it was gzipped pprof */
  profile: Profile | undefined;
  decodeError: string | undefined;
  /** how it was answered */
  behavior: IngestBehavior['kind'];
  receivedAt: number;
}

/** A recorded request the stand-in answered 2xx and that decoded as a profile. */
export type RecordedUpload = RecordedRequest & { profile: Profile };

export class IngestStandIn {
  /** every request received, in order */
  readonly requests: RecordedRequest[] = [];
  /** requests answered 2xx whose body decoded as pprof */
  readonly uploads: RecordedUpload[] = [];

  readonly #server: http.Server;
  readonly #sockets = new Set<Socket>();
  readonly #timers = new Set<ReturnType<typeof realSetTimeout>>();
  readonly #waiters = new Set<() => void>();
  #defaultBehavior: IngestBehavior = { kind: 'ok' };
  readonly #scripted: IngestBehavior[] = [];

  private constructor(server: http.Server) {
    this.#server = server;
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    server.on('request', (req, res) => this.#onRequest(req, res));
  }

  /** Start listening on 127.0.0.1 with a random port. */
  static async start(behavior: IngestBehavior = { kind: 'ok' }): Promise<IngestStandIn> {
    const server = http.createServer({ keepAliveTimeout: 5_000 });
    const standIn = new IngestStandIn(server);
    standIn.respond(behavior);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return standIn;
  }

  /** Base URL, e.g. `http://127.0.0.1:34567` (use as the exporter's serverAddress). */
  get url(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /** How every following request is answered (after any `respondOnce` ones). */
  respond(behavior: IngestBehavior): this {
    this.#defaultBehavior = behavior;
    return this;
  }

  /** Answer the next request(s) this way, in order; then back to the `respond` behavior. */
  respondOnce(...behaviors: IngestBehavior[]): this {
    this.#scripted.push(...behaviors);
    return this;
  }

  /** Open connections right now (hung ones included). */
  get openConnections(): number {
    return this.#sockets.size;
  }

  /** Resolves once `n` uploads were answered 2xx; rejects after `timeoutMs` with what arrived. */
  waitForUploads(n: number, timeoutMs: number): Promise<RecordedUpload[]> {
    return this.#waitFor(() => this.uploads.length >= n, timeoutMs, () => `${this.uploads.length}/${n} uploads`).then(
      () => this.uploads.slice(0, n),
    );
  }

  /** Resolves once `n` requests arrived (whatever the answer). */
  waitForRequests(n: number, timeoutMs: number): Promise<RecordedRequest[]> {
    return this.#waitFor(() => this.requests.length >= n, timeoutMs, () => `${this.requests.length}/${n} requests`).then(
      () => this.requests.slice(0, n),
    );
  }

  /** Forget what was recorded (long tests: bodies are kept until then). */
  clearRecorded(): void {
    this.requests.length = 0;
    this.uploads.length = 0;
  }

  /** Stop listening and destroy every connection, hung ones included. */
  async close(): Promise<void> {
    for (const timer of this.#timers) realClearTimeout(timer);
    this.#timers.clear();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  #onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', () => undefined); // the client may give up half-way (timeouts): not our failure
    req.on('end', () => {
      const behavior = this.#scripted.shift() ?? this.#defaultBehavior;
      const recorded = record(req, Buffer.concat(chunks), behavior.kind);
      this.requests.push(recorded);
      this.#answer(behavior, recorded, req, res);
      this.#notify();
    });
  }

  #answer(behavior: IngestBehavior, recorded: RecordedRequest, req: http.IncomingMessage, res: http.ServerResponse): void {
    switch (behavior.kind) {
      case 'ok':
        return this.#reply(res, 200, '', recorded);
      case 'status':
        return this.#reply(res, behavior.status, behavior.body ?? '', recorded, behavior.headers);
      case 'slow': {
        const timer = realSetTimeout(() => {
          this.#timers.delete(timer);
          this.#reply(res, behavior.status ?? 200, '', recorded);
        }, behavior.ms);
        this.#timers.add(timer);
        return;
      }
      case 'hang':
        return; // keep the socket open, never answer; close() destroys it
      case 'reset':
        req.socket.destroy();
        return;
    }
  }

  #reply(res: http.ServerResponse, status: number, body: string, recorded: RecordedRequest, headers = {}): void {
    if (res.destroyed) return; // the client gave up (timeout) before the answer
    res.writeHead(status, { 'content-type': body.startsWith('{') ? 'application/json' : 'text/plain', ...headers });
    res.end(body);
    if (status >= 200 && status < 300 && recorded.profile !== undefined) {
      this.uploads.push(recorded as RecordedUpload);
      this.#notify();
    }
  }

  #waitFor(done: () => boolean, timeoutMs: number, progress: () => string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (done()) return resolve();
      const check = (): void => {
        if (!done()) return;
        this.#waiters.delete(check);
        realClearTimeout(timer);
        resolve();
      };
      const timer = realSetTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`ingest stand-in: timed out after ${timeoutMs} ms with ${progress()}`));
      }, timeoutMs);
      this.#waiters.add(check);
    });
  }

  #notify(): void {
    for (const check of [...this.#waiters]) check();
  }
}

function record(req: http.IncomingMessage, body: Buffer, behavior: IngestBehavior['kind']): RecordedRequest {
  const url = new URL(req.url ?? '/', 'http://stand-in');
  const query = Object.fromEntries(url.searchParams);
  const decoded = decodeProfile(body);
  return {
    method: req.method ?? '',
    path: url.pathname,
    query,
    name: query.name,
    from: query.from === undefined ? undefined : Number(query.from),
    until: query.until === undefined ? undefined : Number(query.until),
    headers: req.headers,
    body,
    profile: decoded.profile,
    decodeError: decoded.error,
    behavior,
    receivedAt: Date.now(),
  };
}

/**
 * Gunzip and decode a pprof body. Only gzipped bodies are decoded: that is what the exporter
 * sends, and pprof-format's decoder can spin for tens of seconds on arbitrary bytes (a run of
 * 0x80+ bytes reads as one huge varint), which froze a soak test that posts opaque filler.
 */
export function decodeProfile(body: Buffer): { profile?: Profile; error?: string } {
  if (!(body.length >= 2 && body[0] === 0x1f && body[1] === 0x8b)) return { error: 'not gzipped: not decoded' };
  try {
    return { profile: Profile.decode(gunzipSync(body)) };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

/** A URL on 127.0.0.1 where nothing listens (connections are refused). */
export async function refusedUrl(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

// --- reading decoded profiles --------------------------------------------------------------------

/** A string of the profile's string table. */
export function str(profile: Profile, index: number | bigint): string {
  return profile.stringTable.strings[Number(index)] ?? '';
}

/** `type/unit` of each sample type, e.g. ['samples/count', 'cpu/nanoseconds']. */
export function sampleTypeNames(profile: Profile): string[] {
  return profile.sampleType.map((t) => `${str(profile, t.type)}/${str(profile, t.unit)}`);
}

/** String labels of one sample as a plain object. */
export function sampleLabels(profile: Profile, sample: Profile['sample'][number]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const label of sample.label) if (Number(label.str) !== 0) labels[str(profile, label.key)] = str(profile, label.str);
  return labels;
}

/** Position of `sampleType` in the profile's sample types; throws, naming those present, when absent. */
function sampleTypeIndex(profile: Profile, sampleType: string): number {
  const index = profile.sampleType.findIndex((t) => str(profile, t.type) === sampleType);
  if (index < 0) throw new Error(`no sample type ${sampleType} in ${sampleTypeNames(profile).join(', ')}`);
  return index;
}

/** Function id -> function name. */
function functionNames(profile: Profile): Map<number, string> {
  return new Map(profile.function.map((f) => [Number(f.id), str(profile, f.name)]));
}

/**
 * Self value per leaf function name for one sample type (e.g. 'cpu'), largest first.
 * `filter` keeps only some samples (e.g. one route).
 */
export function selfValueByFunction(
  profile: Profile,
  sampleType: string,
  filter: (labels: Record<string, string>) => boolean = () => true,
): Array<[string, number]> {
  const index = sampleTypeIndex(profile, sampleType);
  const functionName = functionNames(profile);
  const leafName = new Map(
    profile.location.map((loc) => [Number(loc.id), functionName.get(Number(loc.line[0]?.functionId ?? 0)) ?? '?']),
  );
  const totals = new Map<string, number>();
  for (const sample of profile.sample) {
    if (!filter(sampleLabels(profile, sample))) continue;
    const leaf = leafName.get(Number(sample.locationId[0] ?? 0)) ?? '?';
    totals.set(leaf, (totals.get(leaf) ?? 0) + Number(sample.value[index] ?? 0));
  }
  return [...totals].sort((a, b) => b[1] - a[1]);
}

/**
 * Total (inclusive) value per function name for one sample type, largest first: a function
 * counts once per sample whose stack contains it, wherever it is on the stack.
 */
export function totalValueByFunction(
  profile: Profile,
  sampleType: string,
  filter: (labels: Record<string, string>) => boolean = () => true,
): Array<[string, number]> {
  const index = sampleTypeIndex(profile, sampleType);
  const functionName = functionNames(profile);
  const namesAt = new Map(
    profile.location.map((loc) => [Number(loc.id), loc.line.map((l) => functionName.get(Number(l.functionId)) ?? '?')]),
  );
  const totals = new Map<string, number>();
  for (const sample of profile.sample) {
    if (!filter(sampleLabels(profile, sample))) continue;
    const value = Number(sample.value[index] ?? 0);
    const names = new Set(sample.locationId.flatMap((id) => namesAt.get(Number(id)) ?? []));
    for (const name of names) totals.set(name, (totals.get(name) ?? 0) + value);
  }
  return [...totals].sort((a, b) => b[1] - a[1]);
}
