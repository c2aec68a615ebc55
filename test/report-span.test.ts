/**
 * `report --span <id>`: a trace's span, offline, from the files the file exporter writes. Only
 * the samples whose span_id is one of the given ids count, as in Grafana's "Profiles for this
 * span" (several ids are merged).
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../src/cli';
import { FileExporter } from '../src/exporters/file';
import type { MinimalLogger } from '../src/types';
import { CPU_TYPES, encodedProfile, MS } from './fixtures/report-profiles';

const silent: MinimalLogger = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };
const SLOW = '00f067aa0ba902b7';
const FAST = '53995c3f42cd8ad8';
const OTHER = 'a1b2c3d4e5f60718';

function capture(): { io: { stdout: (t: string) => void; stderr: (t: string) => void }; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { io: { stdout: (t) => (out += t), stderr: (t) => (err += t) }, out: () => out, err: () => err };
}

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'report-span-'));
  const exporter = new FileExporter({ dir, appName: 'shop', maxFiles: 10, maxBytes: 10 * 1024 * 1024, logger: silent });
  const pay = { route: '/pay', method: 'POST' };
  exporter.export([
    encodedProfile('cpu', {
      sampleTypes: CPU_TYPES,
      samples: [
        // the slow span: mostly in computeTax
        { stack: ['main', 'payHandler', 'computeTax'], labels: { ...pay, span_name: 'POST /pay', span_id: SLOW }, values: [30, 300 * MS] },
        { stack: ['main', 'payHandler'], labels: { ...pay, span_name: 'POST /pay', span_id: SLOW }, values: [2, 20 * MS] },
        // a fast request of the same route: serialize only
        { stack: ['main', 'payHandler', 'serialize'], labels: { ...pay, span_name: 'POST /pay', span_id: FAST }, values: [5, 50 * MS] },
        // another route, another span; and work without any span
        { stack: ['main', 'listHandler', 'renderList'], labels: { route: '/list', method: 'GET', span_name: 'GET /list', span_id: OTHER }, values: [40, 400 * MS] },
        { stack: ['main', 'gc'], values: [10, 100 * MS] },
      ],
    }),
  ]);
  await exporter.close(5_000);
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('report --span', () => {
  it("prints only that span's hottest functions", async () => {
    const c = capture();
    expect(await main(['report', dir, '--span', SLOW], c.io)).toBe(0);
    expect(c.err()).toBe('');
    const out = c.out();
    expect(out).toContain(`only samples of span ${SLOW}; total 320.0 ms`);
    expect(out).toMatch(/\/pay\s+320\.0 ms\s+100\.0%\s+computeTax/);
    expect(out).not.toContain('serialize');
    expect(out).not.toContain('renderList');
    expect(out).not.toContain('/list');
  });

  it('merges several spans (uppercase ids accepted)', async () => {
    const c = capture();
    expect(await main(['report', dir, '--span', SLOW, '--span', FAST.toUpperCase()], c.io)).toBe(0);
    expect(c.out()).toContain(`only samples of spans ${SLOW}, ${FAST}; total 370.0 ms`);
    expect(c.out()).toContain('serialize');
  });

  it('says so when no sample carries the span, and refuses a malformed id', async () => {
    const none = capture();
    expect(await main(['report', dir, '--span', 'ffffffffffffffff'], none.io)).toBe(1);
    expect(none.err()).toContain('error: no sample carries span_id ffffffffffffffff in these 1 profiles');

    const bad = capture();
    expect(await main(['report', dir, '--span', 'xyz'], bad.io)).toBe(2);
    expect(bad.err()).toMatch(/^error: --span must be a span id of 16 hex digits \(e\.g\. 00f067aa0ba902b7\), got 'xyz'/);
  });
});
