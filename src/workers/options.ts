/**
 * Options group: worker threads (`maxWorkers`), kept apart from the relay so src/options/ loads
 * nothing of it.
 */
import { Type } from '@sinclair/typebox';
import { integerIn, opt, type Given, type OptionProblems, type WithDefaults } from '../options/checks';

export const MAX_MAX_WORKERS = 256;

export const WorkersSchema = {
  maxWorkers: Type.Optional(opt(Type.Number(), `an integer from 0 (worker threads never take part) to ${MAX_MAX_WORKERS}`)),
};

export const WORKERS_DEFAULTS = {
  /**
   * Worker threads that may take part at once. Each adds one `thread` series per label set in
   * Pyroscope and one piece per window for the main thread to merge; 16 covers piscina's default
   * pool (1.5 x the cores) on machines of up to 10 cores.
   */
  maxWorkers: 16,
} as const;

export type WorkersInput = WithDefaults<Given<typeof WorkersSchema>, typeof WORKERS_DEFAULTS>;

export interface ResolvedWorkers {
  /** worker threads (profileWorker()) that may take part at once; 0 = none */
  maxWorkers: number;
}

export function resolveWorkers(o: WorkersInput, problems: OptionProblems): ResolvedWorkers {
  return { maxWorkers: integerIn(problems, 'maxWorkers', o.maxWorkers, 0, MAX_MAX_WORKERS) };
}
