/**
 * Issue 22: the profiles of several processes of one service are told apart (src/instance.ts,
 * the pid in file names). A real node:cluster primary forks two workers that profile under the
 * same appName, pushing to one ingest stand-in and writing to one folder: the uploads carry two
 * `instance` tags, `<hostname>/worker-<id>`, and the files two pids, those of the workers.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseProfileFileName } from '../src/exporters/file';
import { runChild } from './helpers/child-report';
import { IngestStandIn } from './helpers/ingest-stand-in';

interface WorkerReport {
  id: number;
  pid: number;
  uploadsOk: number;
}

test('two node:cluster workers: uploads carry instance=<hostname>/worker-<id>, files the worker\'s pid', async () => {
  const ingest = await IngestStandIn.start();
  const outputDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcp-cluster-'));
  try {
    const { workers } = await runChild<{ workers: WorkerReport[] }>(path.join(__dirname, 'fixtures', 'cluster', 'primary.js'), [], {
      env: { INGEST_URL: ingest.url, OUTPUT_DIR: outputDir },
    });
    expect(workers.map((w) => w.id).sort()).toEqual([1, 2]);
    expect(workers.every((w) => w.uploadsOk > 0)).toBe(true);

    const names = new Set(ingest.uploads.map((upload) => upload.name));
    expect([...names].sort()).toEqual([`cluster-app{instance=${os.hostname()}/worker-1}`, `cluster-app{instance=${os.hostname()}/worker-2}`]);

    const files = fs.readdirSync(outputDir).map((name) => parseProfileFileName(name));
    expect(files.every((f) => f !== undefined && f.appName === 'cluster-app' && f.kind === 'cpu')).toBe(true);
    expect([...new Set(files.map((f) => f!.pid))].sort()).toEqual(workers.map((w) => w.pid).sort());
  } finally {
    await ingest.close();
    fs.rmSync(outputDir, { recursive: true, force: true });
  }
}, 60_000);
