import { type FeatureMatrix, Rng } from '@compress/core';
import { expectClose } from '@compress/vitest-config/close';
import { describe, expect, it } from 'vitest';
import { lastWorkspacePeakBytes } from './engine/engine.js';
import { assign, type KMeansProgress, kmeans, kmeansIterate } from './index.js';

/** k Gaussian blobs of `per` points each in D dimensions (centres ~N(0, spread²), unit noise). */
function blobs(
  k: number,
  per: number,
  d: number,
  seed: number,
  spread = 6,
): { x: FeatureMatrix; labels: Int32Array } {
  const rng = new Rng(seed);
  const centres = rng.fillNormal(new Float64Array(k * d), 0, spread);
  const n = k * per;
  const data = new Float32Array(n * d);
  const labels = new Int32Array(n);
  const order = rng.permutation(n);
  for (let t = 0; t < n; t++) {
    const i = order[t]!;
    const c = t % k;
    labels[i] = c;
    for (let j = 0; j < d; j++) data[i * d + j] = centres[c * d + j]! + rng.normal();
  }
  return { x: { rows: n, dim: d, data }, labels };
}

/**
 * The engines square float32 differences in float32 lanes (each point's ‖x − c‖² within ~D float32
 * roundings of it) and sum the points in float64: against this float64 recomputation the inertia is
 * off by 6e-11–2e-10 of itself here, and by at most ~1e-6 (D roundings of 6e-8) on any CPU.
 */
const INERTIA_RTOL = 1e-6;
/**
 * Another thread count or block size only reorders float64 sums (of the inertia and of the centroid
 * sums): ~1e-13 of the value, 1e-9 leaves room. Centroids are those sums rounded to float32, where
 * the reordering can move a coordinate by an ulp: 1e-5 of the centroids' scale.
 */
const REORDERED_F64_RTOL = 1e-9;
const CENTROID_RTOL = 1e-5;

/** Σ‖x − mean‖², the inertia of one cluster, in float64. */
function totalSumOfSquares(x: FeatureMatrix): number {
  const d = x.dim;
  const mean = new Float64Array(d);
  for (let i = 0; i < x.rows; i++) for (let j = 0; j < d; j++) mean[j]! += x.data[i * d + j]! / x.rows;
  let s = 0;
  for (let i = 0; i < x.rows; i++) for (let j = 0; j < d; j++) s += (x.data[i * d + j]! - mean[j]!) ** 2;
  return s;
}

/** Σ‖x − c‖² recomputed in float64 from the result. */
function inertiaOf(x: FeatureMatrix, centroids: FeatureMatrix, assignments: Int32Array): number {
  let s = 0;
  const d = x.dim;
  for (let i = 0; i < x.rows; i++) {
    const c = assignments[i]!;
    for (let j = 0; j < d; j++) s += (x.data[i * d + j]! - centroids.data[c * d + j]!) ** 2;
  }
  return s;
}

/** Every point's nearest centroid by brute force (ties to the lower index). */
function nearest(x: FeatureMatrix, centroids: FeatureMatrix): Int32Array {
  const out = new Int32Array(x.rows);
  const d = x.dim;
  for (let i = 0; i < x.rows; i++) {
    let best = Number.POSITIVE_INFINITY;
    for (let c = 0; c < centroids.rows; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (x.data[i * d + j]! - centroids.data[c * d + j]!) ** 2;
      if (s < best) {
        best = s;
        out[i] = c;
      }
    }
  }
  return out;
}

describe('kmeans', () => {
  it('reaches within 1% of the best inertia over many restarts on blobs, with consistent output', async () => {
    // Separated blobs: a single greedy k-means++ run finds the optimum.
    const { x } = blobs(12, 150, 10, 1, 6);
    const many = await kmeans(x, 12, { restarts: 40, seed: 'reference' });
    for (const seed of [1, 2, 3, 4, 5]) {
      const r = await kmeans(x, 12, { seed });
      expect(r.inertia).toBeLessThanOrEqual(many.inertia * 1.01);
      // The reported inertia, assignments and centroids agree with each other.
      expectClose(r.inertia, inertiaOf(x, r.centroids, r.assignments), { rtol: INERTIA_RTOL });
      expect(r.assignments).toEqual(nearest(x, r.centroids));
      expect(r.iterationsRun).toBeGreaterThan(0);
      expect(r.iterationsRun).toBeLessThanOrEqual(20);
    }
    // Overlapping blobs have bad local optima (single runs land 11–27% above the best here);
    // restarts keep the best of several runs.
    const hard = blobs(12, 150, 10, 1, 3).x;
    const best = await kmeans(hard, 12, { restarts: 40, seed: 'reference' });
    for (const seed of [1, 2]) {
      const r = await kmeans(hard, 12, { seed, restarts: 8 });
      expect(r.inertia).toBeLessThanOrEqual(best.inertia * 1.01);
    }
    // Random starts (faiss's) are worse, and restarts help them too.
    const one = await kmeans(hard, 12, { seed: 9, init: 'random' });
    const ten = await kmeans(hard, 12, { seed: 9, init: 'random', restarts: 10 });
    expect(ten.inertia).toBeLessThanOrEqual(one.inertia);
    expectClose(ten.inertia, inertiaOf(hard, ten.centroids, ten.assignments), { rtol: INERTIA_RTOL });
  });

  it('recovers well-separated blobs exactly and converges early', async () => {
    const { x, labels } = blobs(5, 40, 6, 2, 30);
    const r = await kmeans(x, 5, { seed: 7 });
    // Same partition as the labels (up to renaming).
    const map = new Map<number, number>();
    for (let i = 0; i < x.rows; i++) {
      const seen = map.get(r.assignments[i]!);
      if (seen === undefined) map.set(r.assignments[i]!, labels[i]!);
      else expect(seen).toBe(labels[i]);
    }
    expect(map.size).toBe(5);
    expect(r.iterationsRun).toBeLessThan(20);
  });

  it('is reproducible from its seed and the same on 1 and 2 threads', async () => {
    const { x } = blobs(6, 300, 16, 3, 2);
    const a = await kmeans(x, 6, { seed: 11, threads: 1 });
    const b = await kmeans(x, 6, { seed: 11, threads: 2 });
    const c = await kmeans(x, 6, { seed: 12, threads: 2 });
    expect(b.assignments).toEqual(a.assignments);
    expectClose(b.inertia, a.inertia, { rtol: REORDERED_F64_RTOL });
    expectClose(b.centroids.data, a.centroids.data, { rtol: CENTROID_RTOL, what: 'centroids' });
    expect(c.centroids.data).not.toEqual(a.centroids.data);
  });

  it('re-seeds empty clusters by splitting, never leaving one empty', async () => {
    // 3 distinct locations (many copies each) and one far point: random starts often put several
    // centroids on one location, leaving clusters empty after the first assignment.
    const rows: number[] = [];
    for (let i = 0; i < 60; i++) rows.push(i % 3, 0, 0);
    rows.push(100, 100, 100);
    const x = { rows: 61, dim: 3, data: Float32Array.from(rows) };
    // The inertia should be 0: every point sits on its centroid, a float64 mean of equal float32
    // values, and the engines square float32 differences (exactly 0 here). A 0 has no scale of its
    // own: that of the data is their total sum of squares (the inertia of one cluster), ≈ 2.9e4;
    // 1e-8 of it (3e-4) is about the former 5e-4.
    const tss = totalSumOfSquares(x);
    let splitsSeen = 0;
    for (let seed = 0; seed < 12; seed++) {
      const r = await kmeans(x, 4, {
        seed,
        init: 'random',
        onProgress: (e) => {
          splitsSeen += (e as KMeansProgress).splits;
        },
      });
      const sizes = new Array(4).fill(0);
      for (const a of r.assignments) sizes[a]++;
      expect(sizes.every((s) => s > 0)).toBe(true);
      expectClose(r.inertia, 0, { rtol: 1e-8, scale: tss, what: 'inertia' });
    }
    expect(splitsSeen).toBeGreaterThan(0);
  });

  it('offers a step form yielding progress for every iteration', async () => {
    const { x } = blobs(4, 50, 5, 4, 1);
    const run = kmeansIterate(x, 4, { iterations: 6, restarts: 2, seed: 3, init: 'random' });
    const steps: KMeansProgress[] = [];
    let step = await run.next();
    while (!step.done) {
      steps.push(step.value);
      step = await run.next();
    }
    expect(steps.length).toBeGreaterThan(1);
    expect(steps[0]).toMatchObject({
      phase: 'kmeans',
      unit: 'iterations',
      restart: 0,
      iteration: 1,
      done: 1,
      total: 12,
    });
    expect(steps[0]!.changed).toBe(200);
    expect(steps.at(-1)!.restart).toBe(1);
    // Lloyd never increases the inertia within a restart.
    for (let i = 1; i < steps.length; i++) {
      if (steps[i]!.restart === steps[i - 1]!.restart) {
        expect(steps[i]!.inertia).toBeLessThanOrEqual(steps[i - 1]!.inertia * (1 + 1e-9));
      }
    }
    expect(step.value.centroids.rows).toBe(4);
    // Breaking out early releases the run.
    for await (const e of kmeansIterate(x, 4, { iterations: 50 })) {
      expect(e.iteration).toBe(1);
      break;
    }
  });

  it('fits on a sample with maxPointsPerCentroid and assigns every point', async () => {
    const { x } = blobs(3, 400, 4, 5, 20);
    const r = await kmeans(x, 3, { maxPointsPerCentroid: 20, seed: 2 });
    expect(r.assignments.length).toBe(1200);
    expect(r.assignments).toEqual(nearest(x, r.centroids));
  });

  it('streams points larger than blockBytes with bounded memory and the same result', async () => {
    const { x } = blobs(8, 500, 32, 6, 2); // 4000 × 32 floats = 500 KiB
    const resident = await kmeans(x, 8, { seed: 1, init: 'random', threads: 2 });
    const streamed = await kmeans(x, 8, { seed: 1, init: 'random', threads: 2, blockBytes: 64 * 1024 });
    expect(lastWorkspacePeakBytes()).toBeLessThan(4000 * 32 * 4);
    expect(streamed.assignments).toEqual(resident.assignments);
    expectClose(streamed.inertia, resident.inertia, { rtol: REORDERED_F64_RTOL });
    await expect(kmeans(x, 8, { blockBytes: 64 * 1024 })).rejects.toThrow(
      "kmeans: init 'kmeans++' needs the 4000 × 32 points in the engine at once",
    );
  });

  it('rejects bad input with messages naming it', async () => {
    const x = { rows: 5, dim: 2, data: Float32Array.from([0, 0, 1, 1, 2, 2, 3, 3, 4, 4]) };
    await expect(kmeans(x, 6)).rejects.toThrow(
      'kmeans: k must be an integer from 1 to 5 (the number of points), got 6',
    );
    await expect(kmeans(x, 2, { minPointsPerCentroid: 3 })).rejects.toThrow(
      'kmeans: 5 points are too few for k = 2 centroids with at least 3 points each (options.minPointsPerCentroid); expected N ≥ 6',
    );
    const bad = { rows: 5, dim: 2, data: x.data.slice() };
    bad.data[7] = Number.NaN;
    await expect(kmeans(bad, 2)).rejects.toThrow('kmeans: x: found NaN at row 3, column 1');
    await expect(kmeans(x, 2, { init: 'farthest' as 'random' })).rejects.toThrow(
      `kmeans: options.init must be 'kmeans++' or 'random', got "farthest"`,
    );
    await expect(kmeans(x, 2, { iterations: -1 })).rejects.toThrow(
      'kmeans: options.iterations must be an integer',
    );
    await expect(assign({ rows: 2, dim: 3, data: new Float32Array(6) }, x)).rejects.toThrow(
      'assign: x.dim (2) must equal centroids.dim (3)',
    );
  });
});

describe('assign', () => {
  it('gives every point its nearest centroid and the squared distance', async () => {
    const rng = new Rng(9);
    const centroids = { rows: 37, dim: 7, data: rng.fillNormal(new Float32Array(37 * 7)) };
    const x = { rows: 500, dim: 7, data: rng.fillNormal(new Float32Array(500 * 7)) };
    for (const engine of ['wasm', 'onnxruntime'] as const) {
      const r = await assign(centroids, x, { engine });
      expect(r.assignments).toEqual(nearest(x, centroids));
      const want = new Float64Array(x.rows);
      for (let i = 0; i < x.rows; i++) {
        for (let j = 0; j < 7; j++)
          want[i]! += (x.data[i * 7 + j]! - centroids.data[r.assignments[i]! * 7 + j]!) ** 2;
      }
      // float32 distances (each within a few float32 roundings of its own value)
      expectClose(r.distances, want, { rtol: 1e-5, what: `${engine} distances` });
      expect(lastWorkspacePeakBytes()).toBeGreaterThan(0);
    }
  });
});

describe('the onnxruntime engine', () => {
  it('gives the same clustering as the WebAssembly kernels, resident or streamed, on 1 and 2 threads', async () => {
    const { x } = blobs(40, 40, 24, 3);
    for (const options of [
      { seed: 3 },
      { seed: 4, init: 'random', restarts: 2, threads: 1 },
      { seed: 5, init: 'random', blockBytes: 64 * 1024 },
    ] as const) {
      const wasm = await kmeans(x, 40, { ...options, engine: 'wasm' });
      const native = await kmeans(x, 40, { ...options, engine: 'onnxruntime' });
      expect(native.assignments).toEqual(wasm.assignments);
      expect(native.iterationsRun).toBe(wasm.iterationsRun);
      // the same assignments; float32 squared distances summed in float64 (measured equal here)
      expectClose(native.inertia, wasm.inertia, { rtol: 1e-5, what: 'inertia' });
    }
  });

  it('breaks exact ties toward the lower centroid index, as the kernels do', async () => {
    // Every point is equally far from centroids 1 and 3 (and farther from 0 and 2).
    const centroids = { rows: 4, dim: 2, data: Float32Array.of(9, 9, 1, 0, -9, -9, -1, 0) };
    const x = { rows: 3, dim: 2, data: Float32Array.of(0, 0, 0, 1, 0, -2) };
    for (const engine of ['wasm', 'onnxruntime'] as const) {
      expect(Array.from((await assign(centroids, x, { engine })).assignments)).toEqual([1, 1, 1]);
    }
  });

  it('is refused by name when the option is misspelt', async () => {
    const { x } = blobs(3, 10, 4, 3, 1);
    await expect(kmeans(x, 3, { engine: 'native' as 'wasm' })).rejects.toThrow(
      `kmeans: options.engine must be one of 'auto', 'wasm', 'onnxruntime', got "native"`,
    );
    await expect(assign(x, x, { engine: 'gpu' as 'wasm' })).rejects.toThrow(
      `assign: options.engine must be one of`,
    );
  });
});
