/**
 * `npm run demo -- leak`: find a memory leak the way the CPU demo finds a hot function.
 *
 *  1. write the scenario's config (etc/greet.yaml with SimulateMemoryLeak on, the CPU loop off,
 *     checks every second and a window every few seconds) into the run directory;
 *  2. start greet with GREET_HEAP_THRESHOLD=+16MiB: no profiling until the heap has grown by
 *     16 MiB, then a session the heap trigger started;
 *  3. drive load on GET /ping (each ping is remembered forever by retainPingRecord) until the
 *     heap trigger has started a session, then for DEMO_SECONDS more (so the snapshots span the
 *     same time however fast this machine serves), and stop greet;
 *  4. print the session's trigger and `report --growth` of its heap profiles, with
 *     retainPingRecord on top, and the HTML flame graph coloured by growth;
 *  5. do it again without the leak (profiling all the time, since the heap trigger would never
 *     fire) and show that nothing grew beyond NO_LEAK_BOUND_BYTES.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import { selfGrowth, type GrowthReport } from '../../src/report/growth';
import { formatGrowth, formatSigned } from '../../src/report/growth-text';
import { writeGrowthHtml } from '../../src/report/html';
import { loadGrowthReport, ReportInputError } from '../../src/report/read-profiles';
import { DemoError } from './demo-error';
import { GREET_START_TIMEOUT_MS, GREET_STOP_TIMEOUT_MS, GreetProcess, KEEP_FUNCTIONS_VISIBLE, type GreetExit } from './greet-process';
import { DEMO_CONNECTIONS, driveLoad, heading, ProgressLine, type LoadResult } from './load';
import { PING_BODY, PING_ROUTE } from './phase-report';

export const LEAK_FUNCTION = 'retainPingRecord';
/** The heap trigger: this much above greet's heap once started. */
const HEAP_TRIGGER = '+16MiB';
const MiB = 1024 * 1024;
/**
 * Without the leak, no function may grow more than this between the first and the last window.
 * What grows there is garbage V8 had not collected yet when a window was cut, and the plugin's
 * own encoding buffers, which come and go: at the default 512 KiB sampling interval a few samples
 * (measured here, 8 s runs on Node 20: at most +1.0 MiB, two samples). The bound is eight samples;
 * the leak grows by tens of MiB in the same time.
 */
export const NO_LEAK_BOUND_BYTES = 4 * MiB;
/** How long the leak may take to reach the heap trigger before the demo gives up. */
const TRIGGER_TIMEOUT_S = 60;

export interface LeakSettings {
  seconds: number;
  repoRoot: string;
  runDir: string;
  greetScript: string;
  /** etc/greet.yaml, which the scenario's config starts from */
  configFile: string;
}

interface LeakPhase {
  name: 'leak' | 'no-leak';
  leak: boolean;
  dir: string;
  load: LoadResult;
  exit: GreetExit;
  heapTrigger: string | undefined;
  growth: GrowthReport;
  html: string;
}

/** A window every few seconds, so even a short run has several heap snapshots to compare. */
function uploadRateFor(seconds: number): string {
  return `${Math.max(2, Math.min(5, Math.floor(seconds / 4)))}s`;
}

/** etc/greet.yaml as the scenario runs it, written next to its profiles (so the user can read it). */
function writeScenarioConfig(settings: LeakSettings, dir: string, leak: boolean): string {
  const doc = parseDocument(readFileSync(settings.configFile, 'utf8'));
  doc.set('SimulateCPULoad', false);
  doc.set('SimulateMemoryLeak', leak);
  doc.setIn(['Profiling', 'CheckInterval'], '1s');
  doc.setIn(['Profiling', 'UploadRate'], uploadRateFor(settings.seconds));
  const file = path.join(dir, 'greet.yaml');
  writeFileSync(file, doc.toString());
  return file;
}

async function runLeakPhase(settings: LeakSettings, name: LeakPhase['name'], leak: boolean): Promise<LeakPhase> {
  const dir = path.join(settings.runDir, name);
  mkdirSync(dir, { recursive: true });
  const configFile = writeScenarioConfig(settings, dir, leak);
  heading(leak
    ? `greet with the leak ON (${LEAK_FUNCTION} keeps every ping): ${settings.seconds} s of load on GET ${PING_ROUTE}`
    : `greet with the leak OFF: ${settings.seconds} s of load on GET ${PING_ROUTE}, profiled all the time`);
  const greet = await GreetProcess.start({
    script: settings.greetScript,
    nodeFlags: KEEP_FUNCTIONS_VISIBLE,
    configFile,
    outputDir: dir,
    simulateCPULoad: false,
    greetEnv: leak ? { GREET_SIMULATE_MEMORY_LEAK: '1', GREET_HEAP_THRESHOLD: HEAP_TRIGGER } : { GREET_SIMULATE_MEMORY_LEAK: '0' },
    cwd: settings.repoRoot,
    env: process.env,
    startTimeoutMs: GREET_START_TIMEOUT_MS,
    onProblem: (line) => console.log(`  greet ${line}`),
  });
  let load: LoadResult;
  try {
    console.log(`greet listening at ${greet.url} with ${configFile}, profiles to ${dir}`);
    if (greet.heapTrigger) console.log(greet.heapTrigger);
    const url = `${greet.url}${PING_ROUTE}`;
    if (leak) await loadUntilSession(greet, url);
    load = await driveLoad(url, { seconds: settings.seconds, connections: DEMO_CONNECTIONS, expectBody: PING_BODY, progress: new ProgressLine() });
  } catch (error) {
    greet.kill();
    throw error;
  }
  const exit = await greet.stop(GREET_STOP_TIMEOUT_MS);
  console.log(`greet stopped (SIGTERM); ${load.ok} requests served, ${exit.stats?.sessions ?? 'unknown'} session(s), ${exit.stats?.windows ?? 'unknown'} window(s)`);
  let growth: GrowthReport;
  try {
    growth = await loadGrowthReport([dir], { top: 5 });
  } catch (error) {
    if (error instanceof ReportInputError) throw new DemoError(`the growth report could not compare ${dir}: ${error.message}`);
    throw error;
  }
  console.log(`\n${formatGrowth(growth)}`);
  const html = await writeGrowthHtml(growth, path.join(dir, 'html'));
  return { name, leak, dir, load, exit, heapTrigger: greet.heapTrigger, growth, html };
}

/** Load in one-second rounds until the plugin logs that a session started (the leak reached the trigger). */
async function loadUntilSession(greet: GreetProcess, url: string): Promise<void> {
  let rounds = 0;
  while (greet.sessionStarted === undefined) {
    if (rounds++ >= TRIGGER_TIMEOUT_S) throw new DemoError(`no session started after ${TRIGGER_TIMEOUT_S} s of leaking load: the heap trigger (${HEAP_TRIGGER}) was not reached`);
    await driveLoad(url, { seconds: 1, connections: DEMO_CONNECTIONS, expectBody: PING_BODY, progress: new ProgressLine() });
  }
  console.log(`greet after ${rounds} s of load: ${greet.sessionStarted}`);
}

/** The leak run must show the story: the heap trigger started the session, the leak tops the ranking. */
function checkLeakPhase(phase: LeakPhase): void {
  const trigger = phase.exit.stats?.lastTrigger;
  if (!trigger || trigger.signal !== 'heap') {
    throw new DemoError(`no session was started by the heap trigger (last trigger: ${JSON.stringify(trigger ?? null)}); did the heap grow by ${HEAP_TRIGGER.slice(1)}?`);
  }
  console.log(`OK: the heap trigger started the session: the heap read ${trigger.value} per mille of its limit, the threshold is ${trigger.threshold}`);
  const top = phase.growth.functions[0];
  if (top?.name !== LEAK_FUNCTION) {
    throw new DemoError(`the function that grew most is ${top?.name ?? 'none'}, not ${LEAK_FUNCTION}; see ${phase.html}`);
  }
  console.log(`OK: ${LEAK_FUNCTION} grew most: ${formatSigned(selfGrowth(top), 'bytes')} between the first and the last window, at ${top.location || 'an unknown location'}`);
  console.log(`Flame graph coloured by growth: ${phase.html}`);
}

/** Without the leak, nothing may grow beyond the bound. */
function checkNoLeakPhase(phase: LeakPhase): void {
  const top = phase.growth.functions[0];
  const most = top ? selfGrowth(top) : 0;
  if (most > NO_LEAK_BOUND_BYTES) {
    throw new DemoError(`without the leak, ${top!.name} still grew by ${formatSigned(most, 'bytes')} (bound ${formatSigned(NO_LEAK_BOUND_BYTES, 'bytes')}); see ${phase.html}`);
  }
  const leaking = phase.growth.functions.find((f) => f.name === LEAK_FUNCTION);
  if (leaking) throw new DemoError(`${LEAK_FUNCTION} grew with the leak off: was GREET_SIMULATE_MEMORY_LEAK=0 ignored?`);
  console.log(`OK: without the leak nothing grew by more than ${formatSigned(NO_LEAK_BOUND_BYTES, 'bytes')}: the most was ${formatSigned(most, 'bytes')}${top ? ` (${top.name})` : ''}`);
}

function printComparison(leak: LeakPhase, noLeak: LeakPhase): void {
  heading('The difference');
  const change = (p: LeakPhase): string => formatSigned(p.growth.latest.bytes - p.growth.earliest.bytes, 'bytes');
  const top = (p: LeakPhase): string => (p.growth.functions[0] ? `${p.growth.functions[0].name} ${formatSigned(selfGrowth(p.growth.functions[0]), 'bytes')}` : 'none');
  const rows: [string, string, string][] = [
    ['', 'leak on', 'leak off'],
    ['requests served', String(leak.load.ok), String(noLeak.load.ok)],
    ['heap snapshots', String(leak.growth.snapshots), String(noLeak.growth.snapshots)],
    ['in-use change, first to last window', change(leak), change(noLeak)],
    ['function that grew most', top(leak), top(noLeak)],
  ];
  const widths = [0, 1, 2].map((col) => Math.max(...rows.map((row) => row[col]!.length)));
  for (const row of rows) console.log(`  ${row[0].padEnd(widths[0]!)}  ${row[1].padStart(widths[1]!)}  ${row[2].padStart(widths[2]!)}`);
}

function writeLeakSummary(settings: LeakSettings, phases: LeakPhase[]): string {
  const file = path.join(settings.runDir, 'summary.json');
  const summary = {
    scenario: 'leak',
    seconds: settings.seconds,
    route: PING_ROUTE,
    leakFunction: LEAK_FUNCTION,
    noLeakBoundBytes: NO_LEAK_BOUND_BYTES,
    phases: Object.fromEntries(phases.map((p) => [p.name, {
      simulateMemoryLeak: p.leak,
      profileDir: p.dir,
      requests: p.load.ok,
      sessions: p.exit.stats?.sessions ?? null,
      lastTrigger: p.exit.stats?.lastTrigger ?? null,
      heapSnapshots: p.growth.snapshots,
      elapsedMs: p.growth.elapsedMs ?? null,
      inUseBefore: p.growth.earliest.bytes,
      inUseAfter: p.growth.latest.bytes,
      topGrowth: p.growth.functions.map((f) => ({ name: f.name, location: f.location, growth: selfGrowth(f) })),
      html: p.html,
    }])),
  };
  writeFileSync(file, `${JSON.stringify(summary, null, 2)}\n`);
  return file;
}

export async function runLeakDemo(settings: LeakSettings): Promise<void> {
  console.log(`fastify-continuous-profiling demo, leak scenario: profiles and report in ${settings.runDir}`);
  const leak = await runLeakPhase(settings, 'leak', true);
  checkLeakPhase(leak);
  const noLeak = await runLeakPhase(settings, 'no-leak', false);
  checkNoLeakPhase(noLeak);
  printComparison(leak, noLeak);
  const summary = writeLeakSummary(settings, [leak, noLeak]);
  console.log(`\nSummary: ${summary}\nFlame graph of the leak, coloured by growth: ${leak.html}`);
}
