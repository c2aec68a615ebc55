/**
 * `npm run demo`: go-zero's profiling walkthrough, on Fastify, in one command.
 *
 *  1. start greet (etc/greet.yaml: CpuThreshold 0, simulateCPULoad on), profiles to
 *     profiles/demo-<time>/on;
 *  2. drive concurrent load on GET /ping (autocannon) for DEMO_SECONDS (default 20), with a
 *     progress line;
 *  3. stop greet with SIGTERM, so the plugin writes the last window;
 *  4. print the per-route report (top row of /ping: simulateCPULoad) and where the HTML flame
 *     graph is;
 *  5. do it again with the loop off, and print the difference (step 7 of the walkthrough).
 *
 * `npm run demo -- leak` runs the memory-leak scenario instead (demo/leak-demo.ts).
 *
 * With PYROSCOPE_SERVER_ADDRESS set, greet also pushes to that Pyroscope and the demo prints the
 * URL to open. DEMO_OUTPUT_DIR replaces profiles/demo-<time>. A summary of the figures is written
 * to <run dir>/summary.json. Any step that fails ends the demo with a message and exit code 1.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { DemoError } from './demo/demo-error';
import { GREET_START_TIMEOUT_MS, GREET_STOP_TIMEOUT_MS, GreetProcess, KEEP_FUNCTIONS_VISIBLE, type GreetExit } from './demo/greet-process';
import { DEMO_CONNECTIONS, driveLoad, heading, ProgressLine, type LoadResult } from './demo/load';
import { runLeakDemo } from './demo/leak-demo';
import { HOT_FUNCTION, PING_BODY, PING_ROUTE, reportPhase, type PhaseReport } from './demo/phase-report';

const DEFAULT_SECONDS = 20;
const MAX_SECONDS = 600;
/** Said on screen, so nobody expects the same flame graph from a service run without the flags. */
export const INLINING_NOTE =
  `Note: greet runs with ${KEEP_FUNCTIONS_VISIBLE.join(' ')} so that simulateCPULoad keeps its own frame; ` +
  'in production V8 inlines hot functions and books their time to the caller (README: Troubleshooting).';

interface Settings {
  seconds: number;
  repoRoot: string;
  runDir: string;
  greetScript: string;
  configFile: string;
  pyroscope?: string;
}

interface PhaseSpec {
  name: 'on' | 'off';
  simulateCPULoad: boolean;
}

interface PhaseResult {
  spec: PhaseSpec;
  dir: string;
  load: LoadResult;
  report: PhaseReport;
  exit: GreetExit;
  /** CPU time of /ping (its route label) per request served, milliseconds */
  pingCpuMsPerRequest: number;
}

function readSettings(env: NodeJS.ProcessEnv, here: string = __dirname): Settings {
  const repoRoot = findRepoRoot(here);
  const ext = path.extname(__filename);
  return {
    seconds: readSeconds(env.DEMO_SECONDS),
    repoRoot,
    runDir: path.resolve(env.DEMO_OUTPUT_DIR || path.join(repoRoot, 'profiles', `demo-${fileTimestamp(new Date())}`)),
    greetScript: path.join(here, `greet${ext}`),
    configFile: path.join(repoRoot, 'example-app', 'etc', 'greet.yaml'),
    pyroscope: env.PYROSCOPE_SERVER_ADDRESS || undefined,
  };
}

function readSeconds(text: string | undefined): number {
  if (text === undefined || text === '') return DEFAULT_SECONDS;
  const seconds = Number(text);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_SECONDS) {
    throw new DemoError(`DEMO_SECONDS is "${text}"; expected a whole number of seconds from 1 to ${MAX_SECONDS}`);
  }
  return seconds;
}

/** The checkout: the directory above `from` holding example-app/etc/greet.yaml (source or built). */
function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'example-app', 'etc', 'greet.yaml'))) return dir;
    if (path.dirname(dir) === dir) throw new DemoError(`cannot find example-app/etc/greet.yaml above ${from}`);
  }
}

/** `2026-11-26T07-00-00Z`: sorts by time, valid in file names everywhere. */
function fileTimestamp(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

async function runPhase(settings: Settings, spec: PhaseSpec): Promise<PhaseResult> {
  const dir = path.join(settings.runDir, spec.name);
  mkdirSync(dir, { recursive: true });
  heading(`greet with ${HOT_FUNCTION}() ${spec.name.toUpperCase()}: ${settings.seconds} s of load on GET ${PING_ROUTE}`);

  const greet = await GreetProcess.start({
    script: settings.greetScript,
    nodeFlags: KEEP_FUNCTIONS_VISIBLE,
    configFile: settings.configFile,
    outputDir: dir,
    simulateCPULoad: spec.simulateCPULoad,
    cwd: settings.repoRoot,
    env: process.env,
    startTimeoutMs: GREET_START_TIMEOUT_MS,
    onProblem: (line) => console.log(`  greet ${line}`),
  });
  let load: LoadResult;
  try {
    console.log(`greet listening at ${greet.url}, profiles to ${dir}`);
    load = await driveLoad(`${greet.url}${PING_ROUTE}`, {
      seconds: settings.seconds,
      connections: DEMO_CONNECTIONS,
      expectBody: PING_BODY,
      progress: new ProgressLine(),
    });
  } catch (error) {
    greet.kill();
    throw error;
  }
  const exit = await greet.stop(GREET_STOP_TIMEOUT_MS);
  console.log(`greet stopped (SIGTERM); ${load.ok} requests served, ${windowsOf(exit)} profile window(s) flushed`);

  const report = await reportPhase(dir, path.join(dir, 'html'));
  console.log(`\n${report.table}`);
  return { spec, dir, load, report, exit, pingCpuMsPerRequest: report.pingNs / 1e6 / load.ok };
}

function windowsOf(exit: GreetExit): string {
  return exit.stats?.windows === undefined ? 'unknown' : String(exit.stats.windows);
}

/** The loaded phase must show the walkthrough's point: simulateCPULoad on top of /ping. */
function checkLoadedPhase(result: PhaseResult): void {
  checkPingReported(result);
  const top = result.report.pingTopFunction;
  if (top !== HOT_FUNCTION) {
    throw new DemoError(
      `the hottest function of ${PING_ROUTE} is ${top ?? 'none'}, not ${HOT_FUNCTION} (${percent(result.report.hotFunctionShare)} of its CPU time); see ${result.report.htmlPing}`,
    );
  }
  console.log(
    `OK: ${HOT_FUNCTION} is the hottest function of ${PING_ROUTE}: ${percent(result.report.hotFunctionShare)} of its CPU time, at ${result.report.pingTopLocation || 'an unknown location'}`,
  );
}

/** With the loop off, it must be gone from the profile. */
function checkUnloadedPhase(result: PhaseResult): void {
  checkPingReported(result);
  if (result.report.hotFunctionShare > 0) {
    throw new DemoError(`${HOT_FUNCTION} still shows in ${PING_ROUTE} with the load function off (${percent(result.report.hotFunctionShare)}): was GREET_SIMULATE_CPU_LOAD=0 ignored?`);
  }
  console.log(`OK: ${HOT_FUNCTION} is gone from ${PING_ROUTE}; its hottest function is now ${result.report.pingTopFunction}`);
}

function checkPingReported(result: PhaseResult): void {
  if (result.report.pingNs === 0 || result.report.pingTopFunction === undefined) {
    throw new DemoError(`the report of ${result.dir} has no CPU samples labelled route=${PING_ROUTE} (report empty for the route)`);
  }
  console.log(`Flame graph of ${PING_ROUTE}: ${result.report.htmlPing}\n  (all routes: ${result.report.htmlIndex})`);
}

function printComparison(on: PhaseResult, off: PhaseResult): void {
  heading(`The difference (step 7 of go-zero's walkthrough: ${HOT_FUNCTION} removed)`);
  const rows: [string, string, string][] = [
    ['', `${HOT_FUNCTION} on`, `${HOT_FUNCTION} off`],
    ['requests served', String(on.load.ok), String(off.load.ok)],
    ['requests per second', perSecond(on.load), perSecond(off.load)],
    ['mean latency', `${on.load.latencyAvgMs.toFixed(2)} ms`, `${off.load.latencyAvgMs.toFixed(2)} ms`],
    [`CPU per request (${PING_ROUTE})`, `${on.pingCpuMsPerRequest.toFixed(3)} ms`, `${off.pingCpuMsPerRequest.toFixed(3)} ms`],
    [`${HOT_FUNCTION} share of ${PING_ROUTE}`, percent(on.report.hotFunctionShare), percent(off.report.hotFunctionShare)],
    [`hottest function of ${PING_ROUTE}`, on.report.pingTopFunction ?? '-', off.report.pingTopFunction ?? '-'],
  ];
  const widths = [0, 1, 2].map((col) => Math.max(...rows.map((row) => row[col].length)));
  for (const row of rows) console.log(`  ${row[0].padEnd(widths[0])}  ${row[1].padStart(widths[1])}  ${row[2].padStart(widths[2])}`);
  const ratio = on.pingCpuMsPerRequest / off.pingCpuMsPerRequest;
  if (Number.isFinite(ratio)) console.log(`\n  ${PING_ROUTE} costs ${ratio.toFixed(1)}x less CPU per request without ${HOT_FUNCTION}.`);
}

/** With Pyroscope: something must have arrived; then the URL to open. */
function reportPyroscope(server: string, phases: PhaseResult[]): void {
  heading('Pyroscope');
  let ok = 0;
  for (const phase of phases) {
    const stats = phase.exit.stats?.exporters?.pyroscope;
    if (!stats) throw new DemoError(`greet did not report Pyroscope upload stats for phase "${phase.spec.name}" (was PYROSCOPE_SERVER_ADDRESS passed to it?)`);
    ok += stats.uploadsOk;
    if (stats.uploadsFailed > 0 || stats.dropped > 0) {
      console.log(`  phase ${phase.spec.name}: ${stats.uploadsFailed} upload(s) failed, ${stats.dropped} profile(s) dropped; last error: ${stats.lastError ?? '-'}`);
    }
  }
  if (ok === 0) throw new DemoError(`nothing reached Pyroscope at ${server}: every upload failed (see the lines above)`);
  console.log(`  ${ok} profile upload(s) accepted by ${server}. Open:`);
  console.log(`  all of greet:  ${pyroscopeUrl(server, '{service_name="greet"}')}`);
  console.log(`  GET ${PING_ROUTE} only: ${pyroscopeUrl(server, `{service_name="greet",route="${PING_ROUTE}"}`)}`);
}

/** Pyroscope's UI: `/?query=<profile type>{<label selector>}&from=now-15m`. */
export function pyroscopeUrl(server: string, selector: string): string {
  const query = `process_cpu:cpu:nanoseconds:cpu:nanoseconds${selector}`;
  return `${server.replace(/\/+$/, '')}/?query=${encodeURIComponent(query)}&from=now-15m`;
}

function writeSummary(settings: Settings, phases: PhaseResult[]): string {
  const file = path.join(settings.runDir, 'summary.json');
  const summary = {
    seconds: settings.seconds,
    route: PING_ROUTE,
    hotFunction: HOT_FUNCTION,
    pyroscope: settings.pyroscope ?? null,
    phases: Object.fromEntries(
      phases.map((p) => [
        p.spec.name,
        {
          simulateCPULoad: p.spec.simulateCPULoad,
          profileDir: p.dir,
          profileFiles: p.report.profileFiles,
          sampleType: p.report.sampleType,
          requests: p.load.ok,
          errors: p.load.errors + p.load.non2xx + p.load.mismatches,
          pingCpuNs: p.report.pingNs,
          totalCpuNs: p.report.totalNs,
          pingCpuMsPerRequest: p.pingCpuMsPerRequest,
          pingTopFunction: p.report.pingTopFunction ?? null,
          pingTopLocation: p.report.pingTopLocation ?? null,
          hotFunctionShare: p.report.hotFunctionShare,
          htmlPing: p.report.htmlPing ?? null,
          htmlIndex: p.report.htmlIndex,
          profiler: p.exit.stats ?? null,
        },
      ]),
    ),
  };
  writeFileSync(file, `${JSON.stringify(summary, null, 2)}\n`);
  return file;
}

function percent(share: number): string {
  return `${(share * 100).toFixed(1)} %`;
}

function perSecond(load: LoadResult): string {
  return load.seconds > 0 ? (load.ok / load.seconds).toFixed(0) : '-';
}

const SCENARIOS = ['cpu', 'leak'];

export async function main(env: NodeJS.ProcessEnv = process.env, args: readonly string[] = []): Promise<void> {
  const scenario = args[0] ?? 'cpu';
  if (!SCENARIOS.includes(scenario) || args.length > 1) {
    throw new DemoError(`unknown arguments "${args.join(' ')}"; run \`npm run demo\` (the CPU scenario) or \`npm run demo -- leak\``);
  }
  const settings = readSettings(env);
  if (scenario === 'leak') return runLeakDemo(settings);
  console.log(`fastify-continuous-profiling demo: profiles and report in ${settings.runDir}`);
  if (settings.pyroscope) console.log(`Pushing to Pyroscope at ${settings.pyroscope} as well (PYROSCOPE_SERVER_ADDRESS)`);
  console.log(INLINING_NOTE);

  const on = await runPhase(settings, { name: 'on', simulateCPULoad: true });
  checkLoadedPhase(on);
  const off = await runPhase(settings, { name: 'off', simulateCPULoad: false });
  checkUnloadedPhase(off);

  printComparison(on, off);
  if (settings.pyroscope) reportPyroscope(settings.pyroscope, [on, off]);
  const summary = writeSummary(settings, [on, off]);
  console.log(`\nSummary: ${summary}\nFlame graph of ${PING_ROUTE} with the load: ${on.report.htmlPing}`);
}

if (require.main === module) {
  main(process.env, process.argv.slice(2)).then(
    () => process.exit(0),
    (error: unknown) => {
      const message = error instanceof DemoError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
      console.error(`\ndemo failed: ${message}`);
      process.exit(1);
    },
  );
}
