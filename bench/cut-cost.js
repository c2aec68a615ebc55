'use strict';
/**
 * Diagnosis (issue 15's flush-block target): how long the engine's own window cut blocks the
 * event loop. `time.stop(true)` (stop V8's CPU profile, start the next, serialize) is what every
 * window of the plugin and of the engine floor begins with; nothing of the plugin runs here (no
 * labels, no encoding, no upload). Six cuts, each after 500 ms of busy work and a short pause.
 *
 *   node bench/cut-cost.js [ts]     ts: load TypeScript's compiler first (a large module graph)
 *
 * 2026-11-29, 2 cores, started as the plugin starts the engine (100 Hz, contexts, CPU time):
 * Node 20 13-22 ms, 22 12-24 ms, 24 15-22 ms, 26 14-23 ms, about the same with and without
 * TypeScript loaded, right after busy work. The bench's flush probe (a cut after a short load
 * and an idle pause, plus the plugin's encoding) read less on Node 24/26 (7-9 ms): the cut's
 * cost depends on what ran before it.
 */
const { time } = require('@datadog/pprof');

if (process.argv[2] === 'ts') require('typescript');
let useCPED = false;
try {
  useCPED = require('@datadog/pprof/out/src/async-context-frame').isAsyncContextFrameActive() === true;
} catch {
  useCPED = false;
}
time.start({ intervalMicros: 10_000, durationMillis: 60_000, withContexts: true, useCPED, collectCpuTime: true });

let sink = 0;
function busy(ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) for (let i = 0; i < 100_000; i++) sink = (sink + i * i) % 1_000_003;
}

(async () => {
  const cuts = [];
  for (let k = 0; k < 6; k++) {
    busy(500);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const started = performance.now();
    time.stop(true, () => ({}));
    cuts.push(performance.now() - started);
  }
  time.stop(false);
  const sorted = [...cuts].sort((a, b) => a - b);
  console.log(
    `${process.version}${process.argv[2] === 'ts' ? ', TypeScript loaded' : ''}, useCPED ${useCPED}: time.stop(true) blocked ` +
      `${cuts.map((ms) => ms.toFixed(1)).join(', ')} ms (median ${((sorted[2] + sorted[3]) / 2).toFixed(1)})`,
  );
})();
