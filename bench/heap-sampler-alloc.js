'use strict';
/**
 * The heap sampler's worst case: CPU time of a loop that does nothing but allocate small objects,
 * with V8's sampling heap profiler on (the plugin's default 512 KiB interval, stack depth 64) and
 * off, in paired runs whose order turns. The README's figure ("5-12 % slower") comes from here
 * (31 pairs, two runs each on Node 20 and 24). Cost is per sample, so it scales with bytes allocated, not with
 * requests: see bench/heap-sampler-idle.js for a server.
 *
 *   node bench/heap-sampler-alloc.js
 */
const { heap } = require('@datadog/pprof');

const PAIRS = Number(process.env.HEAP_BENCH_PAIRS) || 31;
const keep = [];

/** 2,000,000 small objects, one in a thousand kept until the end of the call. */
function allocateSmallObjects() {
  let last;
  for (let i = 0; i < 2e6; i++) {
    last = { i, s: [i, i + 1] };
    if (i % 1000 === 0) keep.push(last);
  }
  keep.length = 0;
  return last;
}

function cpuMicros() {
  const u = process.cpuUsage();
  return u.user + u.system;
}

function measure() {
  const before = cpuMicros();
  allocateSmallObjects();
  return cpuMicros() - before;
}

function withSampler() {
  heap.start(512 * 1024, 64);
  try {
    return measure();
  } finally {
    heap.stop();
  }
}

for (let i = 0; i < 5; i++) measure(); // warm-up: optimized code in both halves
const ratios = [];
for (let pair = 0; pair < PAIRS; pair++) {
  let off;
  let on;
  if (pair % 2) {
    off = measure();
    on = withSampler();
  } else {
    on = withSampler();
    off = measure();
  }
  ratios.push(on / off);
}
ratios.sort((a, b) => a - b);
const at = (q) => ratios[Math.floor(q * (ratios.length - 1))].toFixed(3);
console.log(`${process.version}: sampler on / off, ${PAIRS} pairs: median ${at(0.5)} (quartiles ${at(0.25)}-${at(0.75)}, min ${at(0)}, max ${at(1)})`);
