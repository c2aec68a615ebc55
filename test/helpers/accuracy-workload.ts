/**
 * test/fixtures/accuracy-workload.js (plain JavaScript, so the child processes of the accuracy
 * tests can run it without a compiler) with its types, for the tests that share it.
 */
import type { Profile } from 'pprof-format';

export interface RouteAccuracy {
  samples: number;
  correct: number;
  otherRoute: number;
  unlabelled: number;
  share: number;
}

export interface Accuracy {
  routes: Record<string, RouteAccuracy>;
  background: { samples: number; withRoute: number };
}

export interface ChildResult {
  mode: string;
  node: string;
  labelMode?: string;
  counts: { requests: number; errors: number; byStatus: Record<string, number> };
  profiles: number;
  accuracy: Accuracy;
}

export interface AccuracyRoute {
  pattern: string;
  burn: string;
}

export interface Workload {
  ROUTES: AccuracyRoute[];
  runInChild(mode: string, options: { durationMs: number; connections: number; timeoutMs: number }): Promise<ChildResult>;
  decodeProfile(gzipped: Buffer): Profile;
  /** without `routes`: the workload's own ROUTES */
  routeAccuracy(profile: Profile, routes?: AccuracyRoute[]): Accuracy;
  mergeAccuracy(parts: Accuracy[], routes: AccuracyRoute[]): Accuracy;
  startBackgroundBurn(everyMs?: number): () => void;
  formatAccuracy(mode: string, accuracy: Accuracy): string;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const workload = require('../fixtures/accuracy-workload.js') as Workload;
