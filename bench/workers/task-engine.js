'use strict';
// bench/worker-cost.js: the task in a worker that runs @datadog/pprof's time profiler by itself,
// as a participating worker's engine runs (100 Hz, CPU time, contexts), and nothing of the plugin.
const { time } = require('@datadog/pprof');
const { work } = require('./work');

let useCPED = false;
try {
  useCPED = require('@datadog/pprof/out/src/async-context-frame').isAsyncContextFrameActive() === true;
} catch {
  useCPED = false;
}
time.start({ intervalMicros: 10_000, durationMillis: 4_000, withContexts: true, useCPED, collectCpuTime: true, lineNumbers: false, workaroundV8Bug: false });
module.exports = ({ n }) => work(n);
