#!/usr/bin/env node
'use strict';
// Summarises V8 .cpuprofile files (from `node --cpu-prof`, e.g. a benchmark run with
// BENCH_CPU_PROF=<dir>): the functions with the most self time, and self time per package.
//
//   BENCH_CPU_PROF=/tmp/prof node bench/run.js upload && node bench/profile-summary.js /tmp/prof/upload-*.cpuprofile
//   options: --top N (default 25)
const { readFileSync } = require('node:fs');
const path = require('node:path');

function summarise(file, top) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  // samples[i] was taken in node samples[i] and lasted timeDeltas[i+1] (µs).
  const deltas = profile.timeDeltas;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = deltas[i + 1] ?? 0;
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + dt);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const byFunction = new Map();
  const byPackage = new Map();
  for (const [id, us] of self) {
    const { callFrame } = byId.get(id);
    const where = location(callFrame);
    const key = `${callFrame.functionName || '(anonymous)'}  ${where}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    const pkg = packageOf(callFrame);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
  }
  const pct = (us) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  const ms = (us) => `${(us / 1000).toFixed(0).padStart(7)} ms`;
  console.log(`\n${path.basename(file)}: ${(total / 1e6).toFixed(2)} s of samples`);
  console.log('self time by package:');
  for (const [pkg, us] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`  ${pct(us)} ${ms(us)}  ${pkg}`);
  console.log(`top ${top} functions by self time:`);
  for (const [key, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(us)} ${ms(us)}  ${key}`);
}

function location(frame) {
  if (!frame.url) return '';
  const url = frame.url.replace(/^file:\/\//, '');
  const short = url.includes('node_modules/') ? url.slice(url.lastIndexOf('node_modules/') + 13) : path.relative(process.cwd(), url);
  return `${short}:${frame.lineNumber + 1}`;
}

function packageOf(frame) {
  const url = frame.url.replace(/^file:\/\//, '');
  if (!url) return frame.functionName.startsWith('(') ? frame.functionName : '(native/V8)';
  if (url.startsWith('node:')) return 'node core';
  const i = url.lastIndexOf('node_modules/');
  if (i >= 0) {
    const parts = url.slice(i + 13).split('/');
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  return url.includes('/dist/') ? 'files-api (dist)' : url;
}

const args = process.argv.slice(2);
const topIndex = args.indexOf('--top');
const top = topIndex >= 0 ? Number(args.splice(topIndex, 2)[1]) : 25;
if (args.length === 0) {
  console.error('usage: node bench/profile-summary.js [--top N] file.cpuprofile…');
  process.exit(2);
}
for (const file of args) summarise(file, top);
