'use strict';
// bench/worker-cost.js: the task without the plugin's worker entry point (the baseline).
const { work } = require('./work');

module.exports = ({ n }) => work(n);
