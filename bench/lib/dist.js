'use strict';
// Where the built service is: dist/ (what `npm run build` makes), or BENCH_DIST (a private build,
// e.g. `npx tsc -p tsconfig.build.json --declaration false --outDir bench/.dist`, so a benchmark is
// not disturbed by someone else rebuilding dist/ in a shared working tree).
const path = require('node:path');

const ROOT = path.resolve(__dirname, '../..');
const DIST = process.env.BENCH_DIST ? path.resolve(ROOT, process.env.BENCH_DIST) : path.join(ROOT, 'dist');

function fromDist(relative) {
  return require(path.join(DIST, relative));
}

module.exports = { ROOT, DIST, fromDist };
