/**
 * `fastify-continuous-profiling report <dir>`: the per-route table on stdout, and with `--html`
 * the flame graph pages; `--growth` ranks what grew between heap snapshots. Returns an exit code instead of exiting, so it can be tested in-process.
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_TOP, type SortBy } from './aggregate';
import { formatGrowth } from './growth-text';
import { writeGrowthHtml, writeHtmlReport } from './html';
import { loadGrowthReport, loadReport, ReportInputError, type ReportType } from './read-profiles';
import { formatTable } from './table';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export const EXIT_OK = 0;
/** bad input data: missing directory, no usable profiles */
export const EXIT_FAILURE = 1;
/** bad command line */
export const EXIT_USAGE = 2;

export const REPORT_USAGE = `Usage: fastify-continuous-profiling report <dir|file>... [options]

Reads the profiles the plugin wrote (option outputDir: <app>.<kind>.<time>.pb.gz files) and shows,
per route, the hottest functions with their share of CPU time. Uses the 'cpu' sample type, or
'wall' / 'samples' for profiles without one, and says which. Heap profiles (the plugin's, or any
pprof heap profile with inuse_space) are reported by function: the latest snapshot, or with
--growth what grew from the earliest to the latest.

Options:
  --top <N>           functions per route (default ${DEFAULT_TOP})
  --sort <self|total> rank functions by self time (default) or by total (inclusive) time
  --route <pattern>   only routes matching: a substring, or a glob with * (e.g. '/users/*')
  --span <id>         only the samples of this span: the span_id of a request's local root span
                      (spanProfiles with OpenTelemetry; the id Tempo shows, 16 hex digits).
                      Repeat it for several spans, merged as Grafana's "Profiles for this span"
  --type <cpu|heap>   what to report (default: heap when the input has only heap profiles, else
                      cpu); heap shows the latest snapshot's in-use space and objects by function
                      (heap samples carry no route: --route and --span do not apply)
  --growth            compare the earliest and the latest heap snapshot of the input (a folder, or
                      two files) and rank the functions and stacks whose in-use space grew most,
                      with the rate per minute: where a memory leak is. --sort total ranks by the
                      stacks a function is on; --html draws the latest heap coloured by growth
  --from <time>       with --growth: only snapshots taken at or after this ISO 8601 time
  --to <time>         with --growth: only snapshots taken at or before this ISO 8601 time
  --html <outdir>     also write self-contained flame graph pages (index.html + one per route)
  -h, --help          show this help

Examples:
  npx fastify-continuous-profiling report profiles/ --html profiles/html
  npx fastify-continuous-profiling report profiles/ --growth
`;

class UsageError extends Error {}

interface ReportArgs {
  inputs: string[];
  top: number;
  sortBy: SortBy;
  route: string | undefined;
  htmlDir: string | undefined;
  spanIds: Set<string> | undefined;
  help: boolean;
  type: ReportType | undefined;
  growth: boolean;
  fromMs: number | undefined;
  toMs: number | undefined;
}

function parseReportArgs(argv: readonly string[]): ReportArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        top: { type: 'string' },
        sort: { type: 'string' },
        route: { type: 'string' },
        html: { type: 'string' },
        type: { type: 'string' },
        span: { type: 'string', multiple: true },
        growth: { type: 'boolean' },
        from: { type: 'string' },
        to: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const { values, positionals } = parsed;
  const args: ReportArgs = {
    inputs: positionals,
    top: parseTop(values.top),
    sortBy: parseSort(values.sort),
    route: values.route,
    htmlDir: values.html,
    spanIds: parseSpanIds(values.span),
    help: values.help === true,
    type: parseType(values.type),
    growth: values.growth === true,
    fromMs: parseTime('--from', values.from),
    toMs: parseTime('--to', values.to),
  };
  checkCombination(args);
  return args;
}

/** Options that do not mean anything together are refused, not ignored. */
function checkCombination(args: ReportArgs): void {
  const heap = args.growth || args.type === 'heap';
  if (heap && (args.route !== undefined || args.spanIds !== undefined)) {
    const which = args.route !== undefined ? '--route' : '--span';
    throw new UsageError(`${which} does not apply to heap profiles: heap samples carry no route or span (V8 records no request context for allocations)`);
  }
  if (args.growth && args.type === 'cpu') throw new UsageError('--growth compares heap profiles; it cannot be used with --type cpu');
  if (!args.growth && (args.fromMs !== undefined || args.toMs !== undefined)) throw new UsageError('--from and --to choose the snapshots --growth compares; add --growth');
  if (args.fromMs !== undefined && args.toMs !== undefined && args.fromMs > args.toMs) throw new UsageError('--from is later than --to');
}

function parseTime(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const ms = /^\d{4}-\d{2}-\d{2}/.test(raw) ? Date.parse(raw) : Number.NaN;
  if (Number.isNaN(ms)) throw new UsageError(`${flag} must be an ISO 8601 time such as 2026-11-26T07:00:00Z, got '${raw}'`);
  return ms;
}

const SPAN_ID = /^[0-9a-f]{16}$/;

/** `--span` values as the span_id labels carry them: 16 lowercase hex digits. */
function parseSpanIds(raw: string[] | undefined): Set<string> | undefined {
  if (raw === undefined || raw.length === 0) return undefined;
  const ids = new Set<string>();
  for (const value of raw) {
    const id = value.trim().toLowerCase();
    if (!SPAN_ID.test(id)) throw new UsageError(`--span must be a span id of 16 hex digits (e.g. 00f067aa0ba902b7), got '${value}'`);
    ids.add(id);
  }
  return ids;
}

function parseType(raw: string | undefined): ReportType | undefined {
  if (raw === undefined || raw === 'cpu' || raw === 'heap') return raw;
  throw new UsageError(`--type must be 'cpu' or 'heap', got '${raw}'`);
}

function parseTop(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_TOP;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--top must be a whole number >= 1, got '${raw}'`);
  return n;
}

function parseSort(raw: string | undefined): SortBy {
  if (raw === undefined) return 'self';
  if (raw === 'self' || raw === 'total') return raw;
  throw new UsageError(`--sort must be 'self' or 'total', got '${raw}'`);
}

/** A substring, or with '*' a glob over the whole route. */
export function routeMatcher(pattern: string): (route: string) => boolean {
  if (!pattern.includes('*')) return (route) => route.includes(pattern);
  const source = pattern.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  const re = new RegExp(`^${source}$`);
  return (route) => re.test(route);
}

async function growthCommand(args: ReportArgs, io: CliIo): Promise<number> {
  const growth = await loadGrowthReport(args.inputs, {
    top: args.top,
    sortBy: args.sortBy,
    ...(args.fromMs !== undefined ? { fromMs: args.fromMs } : {}),
    ...(args.toMs !== undefined ? { toMs: args.toMs } : {}),
  });
  io.stdout(formatGrowth(growth));
  if (args.htmlDir !== undefined) {
    const index = await writeGrowthHtml(growth, args.htmlDir);
    io.stdout(`\nFlame graph of the latest heap coloured by growth (opens offline): ${path.resolve(index)}\n`);
  }
  return EXIT_OK;
}

export async function runReportCommand(argv: readonly string[], io: CliIo): Promise<number> {
  let args: ReportArgs;
  try {
    args = parseReportArgs(argv);
  } catch (err) {
    io.stderr(`error: ${(err as Error).message}\n\n${REPORT_USAGE}`);
    return EXIT_USAGE;
  }
  if (args.help) {
    io.stdout(REPORT_USAGE);
    return EXIT_OK;
  }
  if (args.inputs.length === 0) {
    io.stderr(`error: give the directory of profile files to read\n\n${REPORT_USAGE}`);
    return EXIT_USAGE;
  }
  try {
    if (args.growth) return await growthCommand(args, io);
    const report = await loadReport(args.inputs, {
      top: args.top,
      sortBy: args.sortBy,
      ...(args.type !== undefined ? { type: args.type } : {}),
      ...(args.route !== undefined ? { routeFilter: routeMatcher(args.route) } : {}),
      ...(args.spanIds !== undefined ? { spanIds: args.spanIds } : {}),
    });
    if (args.spanIds !== undefined && report.total === 0) {
      io.stderr(
        `error: no sample carries span_id ${[...args.spanIds].join(' or ')} in these ${report.profileCount} profiles ` +
          '(was a profiling session running during that request, its trace sampled, and spanProfiles on?)\n',
      );
      return EXIT_FAILURE;
    }
    if (args.route !== undefined && report.routes.length === 0) {
      io.stderr(`error: no route matches --route '${args.route}' (${report.hiddenRoutes} routes in the profiles)\n`);
      return EXIT_FAILURE;
    }
    if (report.heap !== undefined && (args.route !== undefined || args.spanIds !== undefined)) {
      io.stderr(`error: the input holds only heap profiles, and heap samples carry no route or span: drop ${args.route !== undefined ? '--route' : '--span'}\n`);
      return EXIT_FAILURE;
    }
    io.stdout(formatTable(report));
    if (args.htmlDir !== undefined) {
      const written = await writeHtmlReport(report, args.htmlDir);
      const lines = written.routes.map((r) => `  ${r.route}: ${path.resolve(r.file)}`);
      const what = report.heap !== undefined ? 'in-use memory' : 'all routes';
      io.stdout(`\nFlame graphs (open in a browser, they work offline):\n  ${what}: ${path.resolve(written.index)}\n${lines.join('\n')}\n`);
    }
    return EXIT_OK;
  } catch (err) {
    if (err instanceof ReportInputError) {
      io.stderr(`error: ${err.message}\n`);
      return EXIT_FAILURE;
    }
    io.stderr(`error: report failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT_FAILURE;
  }
}
