'use strict';
// bench/worker-cost.js: the same task in a worker that takes part (profileWorker + withTaskLabels).
const { profileWorker, withTaskLabels } = require('fastify-continuous-profiling/worker');
const { work } = require('./work');

profileWorker({ name: 'bench' });
module.exports = ({ n, labels }) => withTaskLabels(labels, () => work(n));
