'use strict';
/**
 * A stand-in for Pyroscope's ingest endpoint, in the runner process: answers 200 to every POST
 * and keeps, per application name (each configuration uploads as `bench-<config>`), the bytes
 * received and each profile's size and sample count (decoded later, not while load runs).
 */
const http = require('node:http');
const zlib = require('node:zlib');
const { Profile } = require('pprof-format');

/** `name=bench-continuous{k=v}` -> `bench-continuous` */
function appOf(url) {
  const name = new URL(url, 'http://stand-in').searchParams.get('name') || '';
  return name.split('{')[0];
}

class IngestStandIn {
  constructor() {
    this.bodies = [];
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        if (req.method === 'POST') this.bodies.push({ app: appOf(req.url), body: Buffer.concat(chunks) });
        res.end('{}');
      });
    });
  }

  async listen() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${this.server.address().port}`;
  }

  /** Uploads received so far from `app` (since its last take()). */
  received(app) {
    return this.bodies.filter((b) => b.app === app).length;
  }

  /** What `app` uploaded since its previous take(): uploads, bytes, and the largest profile. */
  take(app) {
    const mine = this.bodies.filter((b) => b.app === app);
    this.bodies = this.bodies.filter((b) => b.app !== app);
    const summary = { uploads: mine.length, bytes: 0, maxDecompressedBytes: 0, maxSamples: 0 };
    for (const { body } of mine) {
      summary.bytes += body.length;
      const raw = body[0] === 0x1f && body[1] === 0x8b ? zlib.gunzipSync(body) : body;
      summary.maxDecompressedBytes = Math.max(summary.maxDecompressedBytes, raw.length);
      summary.maxSamples = Math.max(summary.maxSamples, Profile.decode(raw).sample.length);
    }
    return summary;
  }

  close() {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

module.exports = { IngestStandIn };
