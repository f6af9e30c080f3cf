#!/usr/bin/env node
// Benchmark: reading a large feature cache (default 60000 × 2048 float32, 469 MiB) with CachedTeacher, with
// the checksum checks (the default: every block of about 1 MiB checked the first time it is read) next to
// `verify: false`, in the same run. Every round opens the file anew, so each round pays the checks in full:
//   - sequential: `read` in chunks of 4096 rows over the whole file (one pass, every block checked);
//   - one epoch of random batches of 256 rows (`lookup`), the first epoch after opening;
//   - 30 such epochs from one open (the fashion-mnist preset's full budget: only the first epoch checks).
// The file is written once by cacheTeacherFeatures (rows from a synthetic teacher) and read from the page
// cache. Writes bench-results/teacher-cache.json at the workspace root.
// Run it through `pnpm --filter @compress/teacher bench:cache` (serialised with other benchmarks by a lock file).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '@compress/core';
import { CachedTeacher, cacheTeacherFeatures } from '../dist/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..', '..', '..');
const ROWS = Number(process.env.COMPRESS_BENCH_CACHE_ROWS ?? 60000);
const DIM = Number(process.env.COMPRESS_BENCH_CACHE_DIM ?? 2048);
const ROUNDS = Number(process.env.COMPRESS_BENCH_ROUNDS ?? 7);
const BATCH = 256;

const dir = mkdtempSync(join(tmpdir(), 'compress-cache-bench-'));
const file = join(dir, 'features.f32');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
try {
  const image = { data: new Uint8Array(1), height: 1, width: 1, channels: 1 };
  const dataset = {
    name: 'bench',
    length: ROWS,
    classes: ['a'],
    imageShape: [1, 1, 1],
    fingerprint: `bench-${ROWS}`,
    get: (index) => ({ index, image, label: 0 }),
  };
  const teacher = {
    dim: DIM,
    fingerprint: 'bench-teacher',
    embed: async (batch) => {
      const n = batch.shape[0];
      const data = new Float32Array(n * DIM);
      new Rng(batch.indices[0]).fillUniform(data, -1, 1);
      return { rows: n, dim: DIM, data };
    },
    dispose() {},
  };
  const t0 = performance.now();
  const summary = await cacheTeacherFeatures(teacher, dataset, file, { batchSize: BATCH });
  const mib = summary.bytes / 2 ** 20;
  console.log(
    `wrote ${ROWS} × ${DIM} float32 (${mib.toFixed(0)} MiB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  const rng = new Rng(7);
  const epoch = () => {
    const order = Int32Array.from({ length: ROWS }, (_, i) => i);
    rng.shuffle(order);
    return order;
  };
  const EPOCHS = 30;
  const epochs = Array.from({ length: EPOCHS }, epoch);
  const patterns = {
    sequential: (c) => {
      for (let first = 0; first < ROWS; first += 4096) c.read(first, Math.min(4096, ROWS - first));
      return ROWS;
    },
    'random 1 epoch': (c) => {
      const order = epochs[0];
      for (let s = 0; s < ROWS; s += BATCH) c.lookup(order.subarray(s, s + BATCH));
      return ROWS;
    },
    [`random ${EPOCHS} epochs`]: (c) => {
      for (const order of epochs)
        for (let s = 0; s < ROWS; s += BATCH) c.lookup(order.subarray(s, s + BATCH));
      return EPOCHS * ROWS;
    },
  };
  const time = async (pattern, verify) => {
    const start = performance.now();
    const cached = await CachedTeacher.open(file, { dataset, verify });
    const rows = patterns[pattern](cached);
    cached.dispose();
    return rows / ((performance.now() - start) / 1000);
  };
  for (const p of Object.keys(patterns)) await time(p, true); // warm the page cache

  const rows = [];
  for (const pattern of Object.keys(patterns)) {
    const checked = [];
    const trusted = [];
    const ratios = [];
    // Interleaved in alternating order (ABBA…), so that load from other processes falls on both sides.
    for (let r = 0; r < ROUNDS; r++) {
      if (r % 2 === 0) {
        checked.push(await time(pattern, true));
        trusted.push(await time(pattern, false));
      } else {
        trusted.push(await time(pattern, false));
        checked.push(await time(pattern, true));
      }
      ratios.push(checked[r] / trusted[r]);
    }
    const row = {
      name: `CachedTeacher ${ROWS}×${DIM} float32 (${mib.toFixed(0)} MiB), ${pattern}${pattern === 'sequential' ? ' (read, 4096 rows a call)' : ` (lookup, batches of ${BATCH})`}: checked vs verify: false`,
      unit: 'rows/s',
      ours: median(checked),
      reference: median(trusted),
      referenceName: 'the same reads with verify: false',
      ratio: median(ratios),
      higherIsBetter: true,
    };
    rows.push(row);
    console.log(
      `${pattern}: checked ${(row.ours / 1000).toFixed(0)}k rows/s, unchecked ${(row.reference / 1000).toFixed(0)}k rows/s, ratio ${row.ratio.toFixed(3)} (per round: ${ratios.map((x) => x.toFixed(3)).join(' ')})`,
    );
  }
  const machine = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  };
  mkdirSync(join(root, 'bench-results'), { recursive: true });
  writeFileSync(
    join(root, 'bench-results', 'teacher-cache.json'),
    `${JSON.stringify({ package: '@compress/teacher (feature cache reads)', rows, machine, notes: [`Medians of ${ROUNDS} interleaved rounds (ratio: median of per-round ratios); each round opens the file anew, so the checks are paid in every round; the file is in the page cache; other work on the machine may affect the figures.`] }, null, 2)}\n`,
  );
  console.log('wrote bench-results/teacher-cache.json');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
