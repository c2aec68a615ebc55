/**
 * Options group: what a sample is labelled with. Static `tags` (on every series) with the
 * `instance` tag of this process (src/instance.ts), the built-in
 * route/method labels, the bound on distinct label values, span profiles; and the label budget
 * those leave per sample within Pyroscope's labels-per-series limit.
 */
import { Type } from '@sinclair/typebox';
import { defaultInstanceName, INSTANCE_TAG } from '../instance';
import { MAX_SERIES_LABELS, SERVER_SERIES_LABELS, labelNameProblem, tagValueProblem } from '../pyroscope-rules';
import { StringMap, integerIn, opt, type Given, type OptionProblems, type WithDefaults } from './checks';

export const LabelsSchema = {
  tags: Type.Optional(opt(StringMap, 'an object of tag names to string values')),
  instance: Type.Optional(opt(Type.Union([Type.String(), Type.Literal(false)]), 'a tag value naming this process (e.g. "web-1"), or false (no instance tag)')),
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
  /** the user's tags, plus `instance` (src/instance.ts) unless turned off */
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

/** `maxWorkers` (src/workers/options.ts): above 0, `thread` is one more label a sample may carry. */
export function resolveLabels(o: LabelsInput & { maxWorkers: number }, problems: OptionProblems): ResolvedLabels {
  const { labels, spanProfiles } = o;
  const tags = withInstanceTag(problems, { ...(o.tags ?? {}) }, o.instance);
  const tagNames = Object.keys(tags);
  checkTags(tags, labels, o.maxWorkers > 0, problems);
  return {
    tags,
    labels,
    maxLabelValues: integerIn(problems, 'maxLabelValues', o.maxLabelValues, 1, 100_000),
    // span_name is a series label too when span profiles may be on (span_id is not: see
    // cardinality.ts), and `thread` when worker threads may take part (src/workers/)
    maxLabelsPerSample: MAX_SERIES_LABELS - SERVER_SERIES_LABELS - tagNames.length - (spanProfiles === false ? 0 : 1) - (o.maxWorkers === 0 ? 0 : 1),
    spanProfiles,
  };
}

/** Tags are series labels: within the series budget, valid Pyroscope names, none the plugin sets itself. */
function checkTags(tags: Record<string, string>, labels: ResolvedLabels['labels'], threads: boolean, problems: OptionProblems): void {
  const builtinLabels = (labels.route ? 1 : 0) + (labels.method ? 1 : 0);
  const maxTags = MAX_SERIES_LABELS - SERVER_SERIES_LABELS - builtinLabels - RESERVED_USER_LABELS;
  const tagNames = Object.keys(tags);
  if (tagNames.length > maxTags) {
    problems.add(
      'tags',
      `${tagNames.length} tags${INSTANCE_TAG in tags ? ` (with ${INSTANCE_TAG})` : ''}`,
      `at most ${maxTags} tags, "${INSTANCE_TAG}" included (instance: false leaves it out): Pyroscope keeps ${MAX_SERIES_LABELS} labels per series, ${SERVER_SERIES_LABELS} are its own, ` +
        `${builtinLabels} are this plugin's route/method labels and ${RESERVED_USER_LABELS} are kept for route and withLabels labels`,
    );
  }
  for (const name of tagNames) {
    const nameProblem = labelNameProblem(name);
    const valueProblem = tagValueProblem(tags[name]);
    if (nameProblem) problems.add('tags', name, `tag names that are valid Pyroscope label names: the name ${nameProblem}`);
    else if (labels.route && name === 'route') problems.add('tags', name, 'a tag name other than "route", which the plugin sets per request');
    else if (labels.method && name === 'method') problems.add('tags', name, 'a tag name other than "method", which the plugin sets per request');
    else if (threads && name === 'thread') problems.add('tags', name, 'a tag name other than "thread", which the plugin sets per sample when worker threads take part (or maxWorkers: 0)');
    else if (valueProblem) problems.add(`tags.${name}`, tags[name], `a tag value that ${valueProblem}`);
  }
}

/**
 * The tags with `instance` added: the `instance` option's value, else the user's own
 * `tags.instance`, else this process's default name; none with `instance: false`.
 */
function withInstanceTag(problems: OptionProblems, tags: Record<string, string>, instance: string | false | undefined): Record<string, string> {
  if (instance === false) return tags;
  if (instance === undefined) {
    if (!(INSTANCE_TAG in tags)) tags[INSTANCE_TAG] = defaultInstanceName();
    return tags;
  }
  const problem = tagValueProblem(instance);
  if (problem !== undefined) problems.add('instance', instance, `a tag value that ${problem}, or false`);
  else tags[INSTANCE_TAG] = instance;
  return tags;
}
