'use strict';
// The CPU work of one bench task (bench/worker-cost.js).
function work(n) {
  let x = 1;
  for (let i = 0; i < n; i++) x = (Math.imul(x, 1103515245) + 12345) >>> 0;
  return x;
}
module.exports = { work };
