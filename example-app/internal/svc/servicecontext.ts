/** What every handler and logic of the service shares (go-zero's ServiceContext). */
import type { Config } from '../config/config';

export interface ServiceContext {
  readonly config: Config;
}

export function newServiceContext(config: Config): ServiceContext {
  return { config };
}
