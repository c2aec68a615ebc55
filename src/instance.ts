/**
 * Which process a profile comes from: the `instance` tag. Several processes of one service (node:cluster
 * workers, replicas on one host, pods) push under the same application name; without a tag of
 * their own their profiles merge in Pyroscope and cannot be told apart.
 *
 * Default: `<hostname>/<pid>`, or `<hostname>/worker-<id>` in a node:cluster worker (the id the
 * primary gave it: readable, and the same number the primary's logs use). The tag is one more
 * series label in Pyroscope: each value is a series of its own, and a pid changes with every
 * restart, so a service restarted often makes many short series (set `instance` to a stable name,
 * such as the pod name, or `false` for none).
 */
import cluster from 'node:cluster';
import { hostname } from 'node:os';
import { sanitizeLabelValue } from './pyroscope-rules';

export const INSTANCE_TAG = 'instance';

/** The default instance name of this process (characters Pyroscope forbids in values replaced). */
export function defaultInstanceName(): string {
  const host = safeHostname();
  const worker = cluster.isWorker ? cluster.worker?.id : undefined;
  return sanitizeLabelValue(worker === undefined ? `${host}/${process.pid}` : `${host}/worker-${worker}`);
}

function safeHostname(): string {
  try {
    return hostname() || 'localhost';
  } catch {
    return 'localhost';
  }
}
