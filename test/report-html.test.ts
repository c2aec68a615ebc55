/**
 * The HTML flame graph opened in a real browser (Debian's headless Chromium, driven by
 * playwright-core): the page must draw the frames by itself, offline, from a file:// URL.
 *
 * Set REPORT_SCREENSHOT=/some/file.png to also save a screenshot to look at (never commit it).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { Profile } from 'pprof-format';
import { buildReport, type ReportData } from '../src/report/aggregate';
import { renderFlameGraphHtml, writeGrowthHtml, writeHtmlReport, type WrittenHtml } from '../src/report/html';
import { loadGrowthReport, loadReport } from '../src/report/read-profiles';
import { buildProfile, gzipProfile, KNOWN_WINDOWS, PING_FILE } from './fixtures/report-profiles';

function findChromium(): string {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'];
  for (const c of candidates) if (c && existsSync(c)) return c;
  try {
    return execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      "Chromium is not installed: this test opens the report's HTML flame graph in headless Chromium. " +
        'Install it with `apt-get update && apt-get install -y chromium` (.ci/run does), or set CHROMIUM_PATH.',
    );
  }
}

let workDir: string;
let browser: BrowserContext;
let written: WrittenHtml;
/** every URL the pages tried to load that is not a local file */
const networkRequests: string[] = [];

interface DrawnFrame {
  name: string;
  width: number;
  title: string;
  label: string;
}

// Browser-side predicates, as strings: this project compiles without the DOM types.
const LABELS_DRAWN = `(() => {
  const labels = [...document.querySelectorAll('g.frame .d3-flame-graph-label')];
  return labels.length > 0 && labels.every((l) => l.textContent !== '');
})()`;

function sameWidthPredicate(a: string, b: string): string {
  return `(() => {
    const width = (name) => document.querySelector('g.frame[name="' + name + '"] rect')?.getBoundingClientRect().width ?? 0;
    return width(${JSON.stringify(a)}) > 0 && Math.abs(width(${JSON.stringify(a)}) - width(${JSON.stringify(b)})) < 1;
  })()`;
}

/** Opens a page and waits until d3-flame-graph has drawn it (it sets the labels last). */
async function open(file: string): Promise<Page> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(pathToFileURL(file).href);
  await page.waitForFunction(LABELS_DRAWN, undefined, { timeout: 30_000 });
  expect(errors).toEqual([]);
  return page;
}

/** d3-flame-graph draws each frame as <g class="frame" name=...><rect/><title/><div class="d3-flame-graph-label"/></g>. */
async function drawnFrames(page: Page): Promise<DrawnFrame[]> {
  return page.$$eval('g.frame', (groups) =>
    groups.map((g) => ({
      name: g.getAttribute('name') ?? '',
      width: g.querySelector('rect')?.getBoundingClientRect().width ?? 0,
      title: g.querySelector('title')?.textContent ?? '',
      label: g.querySelector('.d3-flame-graph-label')?.textContent ?? '',
    })),
  );
}

function knownReport(): ReportData {
  const report = buildReport(KNOWN_WINDOWS.map((w) => Profile.decode(buildProfile(w).encode())));
  return { ...report, appNames: ['greet'] };
}

/** A heap snapshot where leak() holds `leakBytes` and cache() 1 MiB, both under handler(). */
function heapSnapshot(timeMs: number, leakBytes: number): Buffer {
  const MiB = 1024 * 1024;
  return gzipProfile(buildProfile({
    sampleTypes: [['inuse_objects', 'count'], ['inuse_space', 'bytes']],
    timeMs,
    samples: [
      { stack: ['handler@/app/a.js:1', 'leak@/app/a.js:10'], values: [leakBytes / 64, leakBytes] },
      { stack: ['handler@/app/a.js:1', 'cache@/app/b.js:3'], values: [16, MiB] },
    ],
  }));
}

/** heap/index.html (the latest snapshot) and growth/index.html (1 MiB -> 3 MiB in leak). */
async function writeHeapPages(dir: string): Promise<void> {
  const input = path.join(dir, 'heap-input');
  await fsp.mkdir(input);
  const t0 = Date.UTC(2026, 10, 26, 7, 0, 0);
  await fsp.writeFile(path.join(input, 'app.heap.2026-11-26T07-00-00.000Z.pb.gz'), heapSnapshot(t0, 1024 * 1024));
  await fsp.writeFile(path.join(input, 'app.heap.2026-11-26T07-01-00.000Z.pb.gz'), heapSnapshot(t0 + 60_000, 3 * 1024 * 1024));
  await writeHtmlReport({ ...(await loadReport([input])), appNames: [] }, path.join(dir, 'heap'));
  await writeGrowthHtml({ ...(await loadGrowthReport([input])), appNames: [] }, path.join(dir, 'growth'));
}

beforeAll(async () => {
  const executablePath = findChromium(); // fail first, and clearly, when the browser is missing
  workDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'fcp-report-html-'));
  written = await writeHtmlReport(knownReport(), path.join(workDir, 'html'));
  await writeHeapPages(workDir);
  browser = await chromium.launchPersistentContext(path.join(workDir, 'chromium-profile'), {
    executablePath,
    headless: true,
    viewport: { width: 1200, height: 700 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  await browser.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('file:')) return route.continue();
    networkRequests.push(url);
    return route.abort();
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  if (workDir) await fsp.rm(workDir, { recursive: true, force: true });
});

describe('the HTML flame graph in headless Chromium', () => {
  it("draws the route's frames, with function names, file:line and shares", async () => {
    const page = await open(written.routes.find((r) => r.route === '/ping')!.file);
    const frames = await drawnFrames(page);

    expect(frames.map((f) => f.name)).toEqual(['/ping', 'main', 'pingHandler', 'simulateCPULoad']);
    const root = frames[0]!;
    const hot = frames.find((f) => f.name === 'simulateCPULoad')!;
    expect(hot.label).toBe('simulateCPULoad');
    expect(hot.title).toBe(`simulateCPULoad  ${PING_FILE}:3\n600.0 ms, 85.7% of /ping`);
    expect(root.width).toBeGreaterThan(500);
    expect(hot.width / root.width).toBeCloseTo(600 / 700, 2);
    expect(await page.title()).toBe('greet · /ping · CPU time');
    await page.close();
  });

  it('shows file:line on hover and zooms on click', async () => {
    const page = await open(written.routes.find((r) => r.route === '/ping')!.file);
    const hot = page.locator('g.frame[name="simulateCPULoad"] rect');
    await hot.hover();
    await expect(page.locator('#details').textContent()).resolves.toBe(
      `simulateCPULoad  ${PING_FILE}:3\n600.0 ms, 85.7% of /ping`,
    );
    await hot.click();
    // Zoomed: the frame takes the whole width, like its root.
    await page.waitForFunction(sameWidthPredicate('simulateCPULoad', '/ping'), undefined, { timeout: 30_000 });
    await page.close();
  });

  it('draws every route on the index page, linking to their pages', async () => {
    const page = await open(written.index);
    const byName = new Map((await drawnFrames(page)).map((f) => [f.name, f]));
    for (const name of ['all routes', '/ping', '/users/:id', '(no route)', 'simulateCPULoad', 'stringify']) {
      expect(byName.get(name)?.width).toBeGreaterThan(0);
    }
    const all = byName.get('all routes')!;
    expect(byName.get('/ping')!.width / all.width).toBeCloseTo(0.7, 2);
    expect(byName.get('(no route)')!.width / all.width).toBeCloseTo(0.1, 2);
    const links = await page.$$eval('.links a', (as) => as.map((a) => [a.textContent, a.getAttribute('href')]));
    expect(links).toEqual([
      ['/ping', 'route-ping.html'],
      ['/users/:id', 'route-users_id.html'],
      ['(no route)', 'route-no_route.html'],
    ]);
    await page.close();
  });

  it('is self-contained: nothing loaded from the network, no external script, style or link', async () => {
    const html = await fsp.readFile(written.routes[0]!.file, 'utf8');
    expect(html).not.toMatch(/<script[^>]*\bsrc=/i);
    expect(html).not.toMatch(/<link\b/i);
    expect(html).not.toMatch(/@import/i);
    expect(html).toContain('/* d3-flame-graph@');
    expect(networkRequests).toEqual([]);
  });

  it('shows hostile function names as text, not markup', async () => {
    const evil = '</script><img src=x onerror=alert(1)>';
    const file = path.join(workDir, 'evil.html');
    await fsp.writeFile(
      file,
      renderFlameGraphHtml({
        title: `route ${evil}`,
        subtitle: 'test',
        unit: 'nanoseconds',
        tree: { n: '/evil', f: '', v: 10, c: [{ n: evil, f: 'x.ts:1', v: 10 }] },
      }),
    );
    const page = await open(file);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.locator('h1').textContent()).toBe(`route ${evil}`);
    expect((await drawnFrames(page)).map((f) => f.label)).toContain(evil);
    await page.close();
  });

  it('draws a heap report as one page of in-use memory, with no route frame', async () => {
    const page = await open(path.join(workDir, 'heap', 'index.html'));
    const names = (await drawnFrames(page)).map((f) => f.name);
    expect(names).toEqual(['in-use memory', 'handler', 'leak', 'cache']);
    expect(await page.title()).toBe('heap · In-use space');
    const heading = await page.$$eval('table.functions th', (ths) => ths.map((th) => th.textContent));
    expect(heading).toContain('% heap');
    expect(await page.content()).not.toContain('(no route)');
    await page.close();
  });

  it('colours the growth page by growth: the frame that grew red, the unchanged one grey', async () => {
    const page = await open(path.join(workDir, 'growth', 'index.html'));
    const fill = (name: string): Promise<string | null> => page.locator(`g.frame[name="${name}"] rect`).getAttribute('fill');
    const [leak, cache] = [await fill('leak'), await fill('cache')];
    // d3-flame-graph's differential colours: grown frames keep red 220 and lose green and blue
    expect(leak).toMatch(/^rgb\(220,(\d+),\1\)$/);
    expect(Number(/^rgb\(220,(\d+)/.exec(leak!)![1])).toBeLessThan(100);
    expect(cache).toBe('rgb(220,220,220)');
    const title = await page.locator('g.frame[name="leak"] title').textContent();
    expect(title).toBe('leak  /app/a.js:10\n3.0 MiB, 75.0% of heap growth, +2.0 MiB since the earliest snapshot');
    await page.close();
  });

  const screenshot = process.env.REPORT_SCREENSHOT;
  (screenshot ? it : it.skip)('saves a screenshot to look at (REPORT_SCREENSHOT)', async () => {
    const page = await open(written.routes.find((r) => r.route === '/ping')!.file);
    await page.screenshot({ path: screenshot!, fullPage: true });
    expect(existsSync(screenshot!)).toBe(true);
    await page.close();
  });
});
