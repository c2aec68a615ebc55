/**
 * `fastify-continuous-profiling report <dir>`: the per-route table on stdout, and with `--html`
 * the flame graph pages. Returns an exit code instead of exiting, so it can be tested in-process.
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_TOP, type SortBy } from './aggregate';
import { writeHtmlReport } from './html';
import { loadReport, ReportInputError, type ReportType } from './read-profiles';
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
'wall' / 'samples' for profiles without one, and says which.

Options:
  --top <N>           functions per route (default ${DEFAULT_TOP})
  --sort <self|total> rank functions by self time (default) or by total (inclusive) time
  --route <pattern>   only routes matching: a substring, or a glob with * (e.g. '/users/*')
  --span <id>         only the samples of this span: the span_id of a request's local root span
                      (spanProfiles with OpenTelemetry; the id Tempo shows, 16 hex digits).
                      Repeat it for several spans, merged as Grafana's "Profiles for this span"
  --type <cpu|heap>   what to report (default: heap when the input has only heap profiles, else
                      cpu); heap shows the latest snapshot's in-use space and objects by function
  --html <outdir>     also write self-contained flame graph pages (index.html + one per route)
  -h, --help          show this help

Example:
  npx fastify-continuous-profiling report profiles/ --html profiles/html
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
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const { values, positionals } = parsed;
  return {
    inputs: positionals,
    top: parseTop(values.top),
    sortBy: parseSort(values.sort),
    route: values.route,
    htmlDir: values.html,
    spanIds: parseSpanIds(values.span),
    help: values.help === true,
    type: parseType(values.type),
  };
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
    io.stdout(formatTable(report));
    if (args.htmlDir !== undefined) {
      const written = await writeHtmlReport(report, args.htmlDir);
      const lines = written.routes.map((r) => `  ${r.route}: ${path.resolve(r.file)}`);
      io.stdout(`\nFlame graphs (open in a browser, they work offline):\n  all routes: ${path.resolve(written.index)}\n${lines.join('\n')}\n`);
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
