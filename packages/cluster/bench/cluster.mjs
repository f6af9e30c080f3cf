#!/usr/bin/env node
// Benchmark of @compress/cluster against faiss (k-NN, k-means) and scipy (linear_sum_assignment),
// in one run, on the same inputs, with the same number of threads. Prints a table and writes
// bench-results/cluster.json at the repository root. Run it alone (it is heavy):
//   flock /tmp/compress-bench.lock pnpm --filter @compress/cluster bench
// Options: --threads N (default 2), --quick (smaller sizes, for a smoke test).
// Every k-NN and k-means case runs with the default engine ('auto': onnxruntime-node for large
// products when it is installed) and again on the WebAssembly kernels alone ('wasm').
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@compress/core';
import { loadOnnxRuntime } from '@compress/onnx';
import { ONNX_MIN_WORK } from '../dist/engine/onnxruntime.js';
import { kmeans, knnSearch, linearSumAssignment } from '../dist/index.js';

const args = process.argv.slice(2);
const threads = Number(args[args.indexOf('--threads') + 1] || 0) || Math.min(2, availableParallelism());
const quick = args.includes('--quick');
const python = process.env.COMPRESS_PYTHON ?? '/usr/bin/python3';
const root = new URL('../../..', import.meta.url).pathname;

const N = quick ? 6000 : 60000;
const NQ = quick ? 1000 : 10000;
const dims = [128, 512];

function gaussian(rows, dim, seed) {
  const data = new Float32Array(rows * dim);
  new Rng(seed).fillNormal(data);
  return { rows, dim, data };
}

const dir = mkdtempSync(join(tmpdir(), 'cluster-bench-'));
const plan = [];
const ours = {};
const oursWasm = {};
const notes = {};
const engineOf = async (work, k) =>
  (await loadOnnxRuntime()) !== null && work >= ONNX_MIN_WORK && k ? 'onnxruntime' : 'wasm';
const time = async (f) => {
  const t = performance.now();
  const r = await f();
  return [(performance.now() - t) / 1000, r];
};

try {
  // Warm-up: compile the module and start the workers.
  const w = gaussian(2000, 64, 9);
  await knnSearch(w, w, 5, { threads, metric: 'ip' });

  for (const d of dims) {
    const base = gaussian(N, d, d);
    const queries = gaussian(NQ, d, d + 1);
    writeFileSync(join(dir, `base${d}.f32`), base.data);
    writeFileSync(join(dir, `queries${d}.f32`), queries.data);
    for (const k of [1, 20]) {
      for (const metric of ['ip', 'l2']) {
        const name = `knn ${metric} N=${N} Q=${NQ} D=${d} k=${k}`;
        plan.push({
          kind: 'knn',
          name,
          metric,
          k,
          d,
          nb: N,
          nq: NQ,
          base: `base${d}.f32`,
          queries: `queries${d}.f32`,
        });
        const [s] = await time(() => knnSearch(base, queries, k, { metric, threads }));
        const [sw] = await time(() => knnSearch(base, queries, k, { metric, threads, engine: 'wasm' }));
        ours[name] = s;
        oursWasm[name] = sw;
        notes[name] = `default engine: ${await engineOf(N * NQ * d, true)}`;
        console.error(`ours  ${name}: ${s.toFixed(2)} s (${notes[name]}), wasm engine ${sw.toFixed(2)} s`);
      }
    }
    for (const k of [10, 100, 1000]) {
      const name = `kmeans N=${N} D=${d} k=${k} 20 it`;
      plan.push({ kind: 'kmeans', name, k, d, n: N, iterations: 20, x: `base${d}.f32` });
      const [s, r] = await time(() => kmeans(base, k, { iterations: 20, init: 'random', seed: 1, threads }));
      const [sw] = await time(() =>
        kmeans(base, k, { iterations: 20, init: 'random', seed: 1, threads, engine: 'wasm' }),
      );
      ours[name] = s;
      oursWasm[name] = sw;
      notes[name] =
        `default engine: ${await engineOf(N * k * d, k >= 32)}; ours ran ${r.iterationsRun} iterations + final assignment`;
      console.error(`ours  ${name}: ${s.toFixed(2)} s (${notes[name]}), wasm engine ${sw.toFixed(2)} s`);
    }
  }
  {
    const n = 1000;
    const cost = new Rng(3).fillUniform(new Float64Array(n * n));
    writeFileSync(join(dir, 'lsa.f64'), cost);
    const name = `linearSumAssignment ${n}×${n} uniform`;
    plan.push({ kind: 'lsa', name, n, cost: 'lsa.f64', repeats: 5 });
    let best = Number.POSITIVE_INFINITY;
    for (let r = 0; r < 5; r++) {
      const [s] = await time(() => linearSumAssignment(cost, n, n));
      best = Math.min(best, s);
    }
    ours[name] = best;
    console.error(`ours  ${name}: ${(best * 1000).toFixed(1)} ms (best of 5)`);
  }

  writeFileSync(join(dir, 'plan.json'), JSON.stringify(plan));
  console.error('running the faiss/scipy side…');
  let reference = {};
  let referenceError = null;
  try {
    const out = execFileSync(
      python,
      [new URL('reference.py', import.meta.url).pathname, dir, String(threads)],
      {
        encoding: 'utf8',
        env: { ...process.env, GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1', OMP_NUM_THREADS: String(threads) },
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 1 << 20,
      },
    );
    reference = JSON.parse(out.trim().split('\n').at(-1));
  } catch (e) {
    referenceError = String(e.message ?? e).split('\n')[0];
    console.error(`reference side failed: ${referenceError}`);
  }

  const rows = plan
    .flatMap((p) =>
      p.kind === 'lsa'
        ? [[p, '']]
        : [
            [p, ''],
            [p, ' · wasm engine'],
          ],
    )
    .map(([p, variant]) => {
      const ref = reference[p.name] ?? null;
      const mine = variant ? oursWasm[p.name] : ours[p.name];
      return {
        name: p.name + variant,
        unit: 's',
        ours: mine,
        reference: ref,
        referenceName:
          p.kind === 'lsa'
            ? 'scipy.optimize.linear_sum_assignment'
            : p.kind === 'knn'
              ? `faiss IndexFlat${p.metric === 'ip' ? 'IP' : 'L2'}`
              : 'faiss.Kmeans (niter 20, all points)',
        ratio: ref === null ? null : ref / mine,
        higherIsBetter: false,
        ...(notes[p.name] && !variant ? { note: notes[p.name] } : {}),
      };
    });
  const fmt = (x) =>
    x === null || x === undefined ? 'missing' : x < 1 ? `${(x * 1000).toFixed(1)} ms` : `${x.toFixed(2)} s`;
  console.log(
    `\n@compress/cluster vs faiss/scipy, ${threads} threads (ratio = reference time / ours; ≥ 1: we are faster)\n`,
  );
  console.log(
    `${'benchmark'.padEnd(58)} ${'ours'.padStart(10)} ${'reference'.padStart(10)} ${'ratio'.padStart(7)}`,
  );
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(58)} ${fmt(r.ours).padStart(10)} ${fmt(r.reference).padStart(10)} ${(r.ratio === null ? 'missing' : r.ratio.toFixed(2)).padStart(7)}`,
    );
  }
  const machine = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    threads,
    loadAverage: loadavg().map((x) => Number(x.toFixed(2))),
    ...(referenceError ? { referenceError } : {}),
  };
  mkdirSync(join(root, 'bench-results'), { recursive: true });
  const file = join(root, 'bench-results', quick ? 'cluster-quick.json' : 'cluster.json');
  writeFileSync(file, `${JSON.stringify({ package: '@compress/cluster', rows, machine }, null, 2)}\n`);
  console.log(`\nwrote ${file}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
