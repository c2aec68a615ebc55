/**
 * `report --growth` as terminal text: the two snapshots compared, the functions whose in-use
 * bytes grew most (with the rate), the stacks that grew most, and what shrank in all.
 */
import { perMinute, selfGrowth, totalGrowth, type FunctionGrowth, type GrowthReport } from './growth';
import type { SkippedProfile } from './aggregate';
import { formatSnapshotTime, formatStack, formatValue, HEAP_NO_ROUTE_NOTE, indent, renderColumns, skippedSummary } from './table';

/** `+1.5 MiB`, `-12 KiB`, `0 B` */
export function formatSigned(bytes: number, unit: string): string {
  if (bytes === 0) return formatValue(0, unit);
  return `${bytes > 0 ? '+' : '-'}${formatValue(Math.abs(bytes), unit)}`;
}

function rate(bytes: number, report: GrowthReport): string {
  const r = perMinute(bytes, report.elapsedMs);
  return r === undefined ? '-' : `${formatSigned(Math.round(r), report.unit)}/min`;
}

function heading(report: GrowthReport): string {
  const { earliest, latest, unit } = report;
  const apps = report.appNames.length > 0 ? `${report.appNames.join(', ')}: ` : '';
  const span = report.elapsedMs === undefined ? 'time between them unknown (no rate)' : `${(report.elapsedMs / 1000).toFixed(0)} s apart`;
  const growth = latest.bytes - earliest.bytes;
  return [
    `${apps}Heap growth (in-use space) between 2 of ${report.snapshots} heap snapshots, ${span}`,
    `  earliest: ${earliest.source} (${formatSnapshotTime(earliest.timeMs)}): ${formatValue(earliest.bytes, unit)} in use`,
    `  latest:   ${latest.source} (${formatSnapshotTime(latest.timeMs)}): ${formatValue(latest.bytes, unit)} in use`,
    `  change:   ${formatSigned(growth, unit)} (${rate(growth, report)})`,
  ].join('\n');
}

function functionTable(report: GrowthReport): string {
  const unit = report.unit;
  const rank = report.sortBy === 'self' ? selfGrowth : totalGrowth;
  const rows = report.functions.map((f: FunctionGrowth) => [
    formatSigned(rank(f), unit),
    rate(rank(f), report),
    formatValue(report.sortBy === 'self' ? f.selfBefore : f.totalBefore, unit),
    formatValue(report.sortBy === 'self' ? f.selfAfter : f.totalAfter, unit),
    f.name,
    f.location || '-',
  ]);
  const what = report.sortBy === 'self' ? 'allocated by the function itself (or by built-ins it called)' : 'of every stack the function is on';
  const title = `Top ${report.top} functions by growth of the in-use space ${what}:`;
  if (rows.length === 0) return `${title}\n  none grew`;
  const table = renderColumns(['Growth', 'Rate', 'Earliest', 'Latest', 'Function', 'Location'], rows,
    ['right', 'right', 'right', 'right', 'left', 'left']);
  return `${title}\n${indent(table)}`;
}

function stackLines(report: GrowthReport): string {
  const lines = report.stacks.map((s) => `  ${formatSigned(s.after - s.before, report.unit).padStart(11)}  ${formatStack(s.frames)}`);
  return `Stacks whose in-use space grew most (bytes allocated there and still live):\n${lines.length > 0 ? lines.join('\n') : '  none grew'}`;
}

function shrunkLine(report: GrowthReport): string {
  const { functions, bytes } = report.shrunk;
  if (functions === 0) return 'Nothing shrank.';
  return `${functions} function${functions === 1 ? ' holds' : 's hold'} less than before: ${formatValue(bytes, report.unit)} in all (not listed).`;
}

/** The whole growth report as terminal text. */
export function formatGrowth(report: GrowthReport & { skipped?: readonly SkippedProfile[] }): string {
  const parts = [heading(report), HEAP_NO_ROUTE_NOTE, functionTable(report), stackLines(report), shrunkLine(report)];
  const skipped = skippedSummary(report.skipped ?? []);
  if (skipped) parts.push(skipped);
  return `${parts.join('\n\n')}\n`;
}
