/** The report's programmatic API (the CLI `fastify-continuous-profiling report` is built on it). */
export {
  buildReport,
  chooseSampleType,
  DEFAULT_TOP,
  NO_ROUTE,
  ReportBuilder,
  ROUTE_LABEL,
  SAMPLE_TYPE_PREFERENCE,
  type BuildOptions,
  type FlameNode,
  type FunctionRow,
  type ReportData,
  type RouteReport,
  type SkippedProfile,
  type SortBy,
} from './aggregate';
export { renderFlameGraphHtml, renderIndexHtml, renderRouteHtml, writeHtmlReport, type FlameGraphPage, type WrittenHtml } from './html';
export { decodeProfile, listProfileFiles, loadReport, readProfileFile, ReportInputError } from './read-profiles';
export { formatTable, formatShare, formatValue } from './table';
export { routeMatcher, runReportCommand } from './command';
