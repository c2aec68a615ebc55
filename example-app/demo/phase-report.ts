/**
 * What the demo reads from one phase's profile files, with the plugin's report: the per-route
 * table, the HTML flame graphs, and the figures it compares between phases.
 */
import { readdirSync } from 'node:fs';
import { parseProfileFileName } from '../../src/exporters/file';
import type { ReportData, RouteReport } from '../../src/report/aggregate';
import { writeHtmlReport } from '../../src/report/html';
import { loadReport, ReportInputError } from '../../src/report/read-profiles';
import { formatTable } from '../../src/report/table';
import { DemoError } from './demo-error';

export const PING_ROUTE = '/ping';
/** What greet's /ping answers. */
export const PING_BODY = JSON.stringify({ msg: 'pong' });
export const HOT_FUNCTION = 'simulateCPULoad';

export interface PhaseReport {
  /** the report as the terminal shows it */
  table: string;
  /** flame graph of /ping, and the index of all routes */
  htmlPing?: string;
  htmlIndex: string;
  profileFiles: number;
  /** sample type the report used ('cpu' unless the profiles had none) */
  sampleType: string;
  /** CPU time of the whole process and of /ping, nanoseconds */
  totalNs: number;
  pingNs: number;
  /** first row of /ping's table (hottest by self time) */
  pingTopFunction?: string;
  /** its file:line, as the profiles carry it (source-mapped: the .ts file) */
  pingTopLocation?: string;
  /** simulateCPULoad's self time as a share of /ping's CPU time, 0..1 */
  hotFunctionShare: number;
}

export async function reportPhase(profileDir: string, htmlDir: string): Promise<PhaseReport> {
  const files = profileFilesIn(profileDir);
  const profileFiles = files.length;
  if (!files.some((file) => file.kind === 'cpu')) {
    const found = files.length > 0 ? `only ${files.map((file) => file.name).join(', ')}` : 'no profile file at all';
    throw new DemoError(`no CPU profile written to ${profileDir} (${found}); see greet's output above`);
  }
  let report: ReportData;
  try {
    report = await loadReport([profileDir], { top: 10, sortBy: 'self' });
  } catch (error) {
    if (error instanceof ReportInputError) throw new DemoError(`the report could not read ${profileDir}: ${error.message}`);
    throw error;
  }
  const html = await writeHtmlReport(report, htmlDir);
  const ping = report.routes.find((route) => route.route === PING_ROUTE);
  return {
    table: formatTable(report),
    htmlPing: html.routes.find((route) => route.route === PING_ROUTE)?.file,
    htmlIndex: html.index,
    profileFiles,
    sampleType: report.sampleType.type,
    totalNs: report.total,
    pingNs: ping?.total ?? 0,
    pingTopFunction: ping?.functions[0]?.name,
    pingTopLocation: ping?.functions[0]?.location,
    hotFunctionShare: ping ? hotFunctionShare(ping) : 0,
  };
}

function hotFunctionShare(ping: RouteReport): number {
  return ping.functions.find((row) => row.name === HOT_FUNCTION)?.selfShareOfRoute ?? 0;
}

/** The profile files the plugin's file exporter wrote (named <app>.<kind>.<time>.pb.gz). */
function profileFilesIn(dir: string): { name: string; kind: string }[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    const parsed = parseProfileFileName(name);
    return parsed ? [{ name, kind: parsed.kind }] : [];
  });
}
