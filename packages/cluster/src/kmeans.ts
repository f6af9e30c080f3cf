import { CompressError, type FeatureMatrix, Rng } from '@compress/core';
import { resolveEngine } from './engine/onnxruntime.js';
import {
  type AssignOptions,
  type KMeansInit,
  type KMeansOptions,
  type KMeansProgress,
  type KMeansResult,
  resolve,
  resolveAssign,
} from './kmeans-options.js';
import { nativeWork, Points } from './kmeans-points.js';

export {
  type AssignOptions,
  defaultKMeansOptions,
  type KMeansInit,
  type KMeansOptions,
  type KMeansProgress,
  type KMeansResult,
} from './kmeans-options.js';

/** Relative perturbation when a centroid is split to re-seed an empty cluster (faiss's value). */
const SPLIT_EPS = 1 / 1024;
/**
 * k-means (Lloyd) on the rows of `x`: exact assignments by a blocked float32 product with the
 * nearest-centroid selection fused in (the k-NN engine with k = 1, L2), centroid sums in float64,
 * empty clusters re-seeded by splitting a large one as faiss does. Returns the run of lowest
 * inertia over `restarts`.
 *
 * @param x N × D points
 * @param k clusters, 1 ≤ k ≤ N
 * @example
 * const { centroids, assignments, inertia } = await kmeans(features, 10, { seed: 1 });
 */
export async function kmeans(
  x: FeatureMatrix,
  k: number,
  options: KMeansOptions = {},
): Promise<KMeansResult> {
  const it = kmeansIterate(x, k, options);
  for (;;) {
    const step = await it.next();
    if (step.done) return step.value;
    options.onProgress?.(step.value);
  }
}

/**
 * The step form of {@link kmeans}: an async generator that yields a {@link KMeansProgress} after
 * every iteration of every restart and returns the {@link KMeansResult}. Breaking out of the loop
 * stops the run and releases its memory.
 *
 * @example
 * const run = kmeansIterate(features, 100, { iterations: 50 });
 * let step = await run.next();
 * while (!step.done) {
 *   console.log(step.value.iteration, step.value.inertia);
 *   step = await run.next();
 * }
 * const { centroids } = step.value;
 */
export async function* kmeansIterate(
  x: FeatureMatrix,
  k: number,
  options: KMeansOptions = {},
): AsyncGenerator<KMeansProgress, KMeansResult, void> {
  const fn = 'kmeans';
  const o = resolve(x, k, options, fn);
  const n = x.rows;
  const d = x.dim;
  const rng = new Rng(o.seed);

  // Training set: every point, or a random sample of k·maxPointsPerCentroid of them.
  let train = x;
  const cap = Math.floor(k * o.maxPointsPerCentroid);
  if (n > cap) {
    const pick = rng.fork('sample').permutation(n).subarray(0, cap).sort();
    const data = new Float32Array(cap * d);
    for (let i = 0; i < cap; i++) data.set(x.data.subarray(pick[i]! * d, pick[i]! * d + d), i * d);
    train = { rows: cap, dim: d, data };
  }
  const points = new Points(o, d, k, Math.max(n, train.rows));
  try {
    points.native = await resolveEngine(o.engine, nativeWork(train.rows, k, d), fn);
    let best: KMeansResult | null = null;
    for (let restart = 0; restart < o.restarts; restart++) {
      const r = rng.fork(`restart ${restart}`);
      points.resetChanges();
      const centroids = await initialCentroids(points, train, k, o.init, r);
      let iterationsRun = 0;
      for (let iteration = 1; iteration <= o.iterations; iteration++) {
        const { inertia, changed, sums, counts } = await points.lloyd(train, centroids, true);
        const splits = updateCentroids(centroids, sums!, counts!, k, d, train.rows, r);
        iterationsRun = iteration;
        yield {
          phase: 'kmeans',
          done: restart * o.iterations + iteration,
          total: o.restarts * o.iterations,
          unit: 'iterations',
          metrics: { restart, iteration, inertia, changed, splits, memoryBytes: points.ws.bytes },
          restart,
          iteration,
          inertia,
          changed,
          splits,
        };
        if (changed === 0 && splits === 0) break;
      }
      // Final assignment of every point to the final centroids, with exact distances.
      const final = await points.lloyd(x, centroids, false);
      if (best === null || final.inertia < best.inertia) {
        best = {
          centroids: { rows: k, dim: d, data: centroids },
          assignments: final.assignments!,
          inertia: final.inertia,
          iterationsRun,
        };
      }
    }
    return best!;
  } finally {
    points.ws.close();
  }
}

/**
 * The nearest centroid of every row of `x` (squared L2; ties to the lower centroid index) and the
 * squared distance to it — k-means' assignment step for new points.
 */
export async function assign(
  centroids: FeatureMatrix,
  x: FeatureMatrix,
  options: AssignOptions = {},
): Promise<{ assignments: Int32Array; distances: Float32Array }> {
  const fn = 'assign';
  const o = resolveAssign(centroids, x, options, fn);
  if (x.rows === 0) return { assignments: new Int32Array(0), distances: new Float32Array(0) };
  const points = new Points(o, x.dim, centroids.rows, x.rows);
  try {
    points.native = await resolveEngine(o.engine, nativeWork(x.rows, centroids.rows, x.dim), fn);
    const r = await points.lloyd(x, centroids.data, false, true);
    return { assignments: r.assignments!, distances: r.distances! };
  } finally {
    points.ws.close();
  }
}

/** Initial centroids (k × D, row-major) from the training points. */
async function initialCentroids(
  points: Points,
  train: FeatureMatrix,
  k: number,
  init: KMeansInit,
  rng: Rng,
): Promise<Float32Array> {
  const { rows: n, dim: d, data } = train;
  const c = new Float32Array(k * d);
  if (init === 'random') {
    const pick = rng.permutation(n);
    for (let i = 0; i < k; i++) c.set(data.subarray(pick[i]! * d, pick[i]! * d + d), i * d);
    return c;
  }
  // Greedy k-means++: first centroid uniform, then the best of a few D²-weighted draws.
  points.requireResident(train);
  return points.seed(train, k, rng.int(n), rng);
}

/**
 * Moves every centroid to the mean of its points; re-seeds each empty cluster by splitting another
 * (faiss `split_clusters`: pick cluster j with probability (size_j − 1)/(N − k), copy its centroid,
 * perturb the two copies symmetrically by ±1/1024, and give each half of its points). Returns the
 * number of splits.
 */
function updateCentroids(
  centroids: Float32Array,
  sums: Float64Array,
  counts: Float64Array,
  k: number,
  d: number,
  n: number,
  rng: Rng,
): number {
  for (let c = 0; c < k; c++) {
    const cnt = counts[c]!;
    if (cnt === 0) continue;
    const o = c * d;
    for (let j = 0; j < d; j++) centroids[o + j] = sums[o + j]! / cnt;
  }
  let splits = 0;
  for (let ci = 0; ci < k; ci++) {
    if (counts[ci] !== 0) continue;
    let cj = 0;
    for (let guard = 0; ; cj = (cj + 1) % k, guard++) {
      if (counts[cj]! > 1) {
        const p = n === k ? 1 : (counts[cj]! - 1) / (n - k);
        if (rng.next() < p) break;
      }
      if (guard > 1e7 * k) throw new CompressError('UNSUPPORTED', 'kmeans: no cluster large enough to split');
    }
    const oi = ci * d;
    const oj = cj * d;
    for (let j = 0; j < d; j++) {
      const v = centroids[oj + j]!;
      if (j % 2 === 0) {
        centroids[oi + j] = v * (1 + SPLIT_EPS);
        centroids[oj + j] = v * (1 - SPLIT_EPS);
      } else {
        centroids[oi + j] = v * (1 - SPLIT_EPS);
        centroids[oj + j] = v * (1 + SPLIT_EPS);
      }
    }
    counts[ci] = Math.floor(counts[cj]! / 2);
    counts[cj] = counts[cj]! - counts[ci]!;
    splits++;
  }
  return splits;
}
