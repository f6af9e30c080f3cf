#!/usr/bin/env node
// Large-scale k-NN memory check: an ImageNet-sized base (default 1.28M × 2048, 10.5 GB of float32)
// searched by 50 000 queries, to show that the engine's memory stays bounded (two base blocks, one
// query group) whatever N. Heavy: run it alone, under the benchmark lock:
//   flock /tmp/compress-bench.lock node bench/scale.mjs [--base N] [--dim D] [--queries Q] [--k K]
//     [--blocks B]   stop after B (query group, base block) pairs and extrapolate the full time
// Prints peak RSS, the engine's peak memory, the time, and checks 3 queries against brute force
// (when the run completes).
import { cpus } from 'node:os';
import { lastWorkspacePeakBytes } from '../dist/engine/engine.js';
import { knnSearch } from '../dist/index.js';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const nb = arg('base', 1_280_000);
const d = arg('dim', 2048);
const nq = arg('queries', 50_000);
const k = arg('k', 20);
const stopAfter = arg('blocks', Number.POSITIVE_INFINITY);
const gib = (b) => `${(b / 2 ** 30).toFixed(2)} GiB`;

/** Fast seeded uniform values in [−0.5, 0.5) (xorshift32), so that 2.6e9 of them take seconds. */
function fill(a, seed) {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

let t = performance.now();
const base = { rows: nb, dim: d, data: fill(new Float32Array(nb * d), 1) };
const queries = { rows: nq, dim: d, data: fill(new Float32Array(nq * d), 2) };
console.log(
  `inputs: base ${nb} × ${d} (${gib(nb * d * 4)}), queries ${nq} × ${d} (${gib(nq * d * 4)}), made in ${((performance.now() - t) / 1000).toFixed(1)} s; RSS ${gib(process.memoryUsage().rss)}`,
);

class Stop extends Error {}
let blocks = 0;
let total = 0;
t = performance.now();
let result = null;
try {
  result = await knnSearch(base, queries, k, {
    metric: 'ip',
    threads: Math.min(2, cpus().length),
    onProgress: (e) => {
      blocks = e.done;
      total = e.total ?? 0;
      if (blocks % 10 === 0 || blocks === total) {
        console.log(
          `  block ${blocks}/${total}: ${((performance.now() - t) / 1000).toFixed(1)} s, engine ${gib(e.metrics?.memoryBytes ?? 0)}, RSS ${gib(process.memoryUsage().rss)}`,
        );
      }
      if (blocks >= stopAfter) throw new Stop();
    },
  });
} catch (e) {
  if (!(e instanceof Stop)) throw e;
}
const seconds = (performance.now() - t) / 1000;
const flops = 2 * nb * nq * d;
const maxRss = process.resourceUsage().maxRSS * 1024;
console.log(
  `${result ? 'completed' : `stopped after ${blocks}/${total} blocks`} in ${seconds.toFixed(1)} s` +
    (result ? '' : ` (full run extrapolated: ${((seconds * total) / blocks / 60).toFixed(0)} min)`) +
    `; ${((flops * (result ? 1 : blocks / total)) / seconds / 1e9).toFixed(1)} GFLOP/s`,
);
console.log(
  `memory: peak RSS ${gib(maxRss)} (inputs ${gib((nb + nq) * d * 4)}), engine peak ${gib(lastWorkspacePeakBytes())}`,
);
if (result) {
  for (const q of [0, Math.floor(nq / 2), nq - 1]) {
    let best = Number.NEGATIVE_INFINITY;
    let bi = -1;
    for (let j = 0; j < nb; j++) {
      let s = 0;
      for (let t2 = 0; t2 < d; t2++) s += queries.data[q * d + t2] * base.data[j * d + t2];
      if (s > best) {
        best = s;
        bi = j;
      }
    }
    console.log(
      `query ${q}: nearest ${result.indices[q * k]} (brute force ${bi}), score ${result.scores[q * k]} (${best})`,
    );
  }
}
