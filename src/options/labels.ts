/**
 * Options group: what a sample is labelled with. Static `tags` (on every series), the built-in
 * route/method labels, the bound on distinct label values, span profiles; and the label budget
 * those leave per sample within Pyroscope's labels-per-series limit.
 */
import { Type } from '@sinclair/typebox';
import { MAX_SERIES_LABELS, SERVER_SERIES_LABELS, labelNameProblem, tagValueProblem } from '../pyroscope-rules';
import { StringMap, integerIn, opt, type Given, type OptionProblems, type WithDefaults } from './checks';

export const LabelsSchema = {
  tags: Type.Optional(opt(StringMap, 'an object of tag names to string values')),
  labels: Type.Optional(
    opt(
      Type.Object({ route: Type.Optional(Type.Boolean()), method: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      'an object with boolean "route" and "method"',
    ),
  ),
  maxLabelValues: Type.Optional(opt(Type.Number(), 'an integer from 1 to 100000')),
  spanProfiles: Type.Optional(opt(Type.Boolean(), 'true or false')),
};

export const LABELS_DEFAULTS = {
  labels: { route: true, method: true },
  maxLabelValues: 1000,
} as const;

export type LabelsInput = WithDefaults<Given<typeof LabelsSchema>, typeof LABELS_DEFAULTS>;

export interface ResolvedLabels {
  tags: Record<string, string>;
  labels: { route: boolean; method: boolean };
  maxLabelValues: number;
  /** label keys one sample may carry, after tags and Pyroscope's own series labels */
  maxLabelsPerSample: number;
  /**
   * OpenTelemetry span profiles: undefined = on when @opentelemetry/api loads and a tracer
   * provider is registered; true = the same, warning once when they are absent; false = off.
   */
  spanProfiles?: boolean;
}

/**
 * Label keys the plugin itself may put on a sample (route, method) are reserved in the
 * series budget, and so is room for a few user labels (route config, withLabels).
 */
const RESERVED_USER_LABELS = 4;

export function resolveLabels(o: LabelsInput, problems: OptionProblems): ResolvedLabels {
  const { labels, spanProfiles } = o;
  const tags = { ...(o.tags ?? {}) };
  const tagNames = Object.keys(tags);
  checkTags(tags, labels, problems);
  return {
    tags,
    labels,
    maxLabelValues: integerIn(problems, 'maxLabelValues', o.maxLabelValues, 1, 100_000),
    // span_name is a series label too when span profiles may be on (span_id is not: see cardinality.ts)
    maxLabelsPerSample: MAX_SERIES_LABELS - SERVER_SERIES_LABELS - tagNames.length - (spanProfiles === false ? 0 : 1),
    spanProfiles,
  };
}

/** Tags are series labels: within the series budget, valid Pyroscope names, none the plugin sets itself. */
function checkTags(tags: Record<string, string>, labels: ResolvedLabels['labels'], problems: OptionProblems): void {
  const builtinLabels = (labels.route ? 1 : 0) + (labels.method ? 1 : 0);
  const maxTags = MAX_SERIES_LABELS - SERVER_SERIES_LABELS - builtinLabels - RESERVED_USER_LABELS;
  const tagNames = Object.keys(tags);
  if (tagNames.length > maxTags) {
    problems.add(
      'tags',
      `${tagNames.length} tags`,
      `at most ${maxTags} tags: Pyroscope keeps ${MAX_SERIES_LABELS} labels per series, ${SERVER_SERIES_LABELS} are its own, ` +
        `${builtinLabels} are this plugin's route/method labels and ${RESERVED_USER_LABELS} are kept for route and withLabels labels`,
    );
  }
  for (const name of tagNames) {
    const nameProblem = labelNameProblem(name);
    const valueProblem = tagValueProblem(tags[name]);
    if (nameProblem) problems.add('tags', name, `tag names that are valid Pyroscope label names: the name ${nameProblem}`);
    else if (labels.route && name === 'route') problems.add('tags', name, 'a tag name other than "route", which the plugin sets per request');
    else if (labels.method && name === 'method') problems.add('tags', name, 'a tag name other than "method", which the plugin sets per request');
    else if (valueProblem) problems.add(`tags.${name}`, tags[name], `a tag value that ${valueProblem}`);
  }
}
