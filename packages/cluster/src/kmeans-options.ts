import { CompressError, type FeatureMatrix, type ProgressEvent, type ProgressListener } from '@compress/core';
import { defaultThreads } from './engine/engine.js';
import { checkEngine, type Engine } from './engine/onnxruntime.js';
import { checkBlockBytes, checkInt, checkRows, checkSameDim, checkThreads } from './validate.js';

/** How the first centroids are chosen. */
export type KMeansInit = 'kmeans++' | 'random';

export interface KMeansOptions {
  /**
   * Lloyd iterations (assign every point, then move every centroid to the mean of its points). Stops
   * early only when an iteration changes no assignment (the result is then the same as running on).
   * @default 20 — the paper's cluster-alignment protocol (faiss `niter = 20`)
   */
  iterations?: number;
  /**
   * Seed of every random choice (initial centroids, sampling, splitting of empty clusters).
   * @default 0 — runs are reproducible unless asked otherwise
   */
  seed?: number | string;
  /**
   * Initial centroids: `kmeans++` (Arthur & Vassilvitskii 2007, greedy as in scikit-learn: each next
   * centroid is the best of 2 + ⌊ln k⌋ candidates drawn with probability ∝ squared distance to the
   * nearest chosen one; that many passes over the data per centroid) or `random` (k distinct points,
   * as faiss does).
   * @default 'kmeans++' — far fewer bad local optima than random starts, for about one extra
   * iteration's work per ⌈(2 + ln k)/2⌉ centroids… cheap beside the iterations for moderate k
   */
  init?: KMeansInit;
  /**
   * Independent runs (different initialisations); the one of lowest inertia is returned (faiss `nredo`).
   * @default 1
   */
  restarts?: number;
  /**
   * Fewer than this many points per centroid (N < k·minPointsPerCentroid) is an error: centroids fitted
   * to a handful of points are noise. faiss warns below 39.
   * @default 1 — only k > N is refused
   */
  minPointsPerCentroid?: number;
  /**
   * Fit on a random sample of at most k·maxPointsPerCentroid points (faiss's default is 256), then
   * assign every point to the fitted centroids.
   * @default Infinity — every point takes part, as in the paper's evaluation code
   */
  maxPointsPerCentroid?: number;
  /**
   * Threads to use: worker threads sharing one WebAssembly memory (and onnxruntime's intra-op
   * threads); 1 runs on the calling thread; 0 is one per core (`os.availableParallelism()`), as
   * everywhere in compress.
   * @default 0 — one per core; faiss also uses every core
   */
  threads?: number;
  /**
   * Bytes of points held in the engine at once. Points that fit stay resident for the whole run;
   * larger inputs are streamed through in blocks of this size every iteration (k-means++
   * initialisation needs them resident: use `init: 'random'` or `maxPointsPerCentroid` beyond it).
   * @default 1 GiB — resident up to 1 GiB of points (e.g. 500k × 512), bounded memory beyond
   */
  blockBytes?: number;
  /**
   * What runs the assignment step's product: `wasm`, `onnxruntime` (optional peer dependency) or
   * `auto` (onnxruntime when installed and the product is large); see `KnnOptions.engine`.
   * @default 'auto'
   */
  engine?: Engine;
  /** Called after every iteration (and restart) with `phase: 'kmeans'`; see {@link kmeansIterate}. */
  onProgress?: ProgressListener;
}

export const defaultKMeansOptions: Required<Omit<KMeansOptions, 'onProgress' | 'threads'>> = {
  iterations: 20,
  seed: 0,
  init: 'kmeans++',
  restarts: 1,
  minPointsPerCentroid: 1,
  maxPointsPerCentroid: Number.POSITIVE_INFINITY,
  blockBytes: 2 ** 30,
  engine: 'auto',
};

export interface KMeansResult {
  /** k × D centroids. */
  centroids: FeatureMatrix;
  /** The nearest centroid of every point (N), ties to the lower centroid index. */
  assignments: Int32Array;
  /** Σ ‖x − c(x)‖² over all points, for these centroids and assignments (float64 sum). */
  inertia: number;
  /** Lloyd iterations run by the returned restart (fewer than `iterations` when it converged). */
  iterationsRun: number;
}

/** What {@link kmeansIterate} yields after every iteration: a progress event with the run's figures. */
export interface KMeansProgress extends ProgressEvent {
  phase: 'kmeans';
  unit: 'iterations';
  /** 0-based restart. */
  restart: number;
  /** 1-based iteration within the restart. */
  iteration: number;
  /** Σ‖x − c‖² of the assignment made in this iteration (before the centroids moved). */
  inertia: number;
  /** Points whose centroid changed in this iteration. */
  changed: number;
  /** Empty clusters re-seeded by splitting a large one after this iteration. */
  splits: number;
}

/** The options of a run with their defaults, validated (`threads` resolved to a count). */
export type Resolved = Required<Omit<KMeansOptions, 'onProgress'>>;

export function resolve(x: FeatureMatrix, k: number, options: KMeansOptions, fn: string): Resolved {
  const o: Resolved = {
    ...defaultKMeansOptions,
    threads: defaultThreads(),
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
  } as Resolved;
  checkRows(x, fn, 'x');
  checkInt(k, 'k', fn, 1, x.rows, ' (the number of points)');
  checkInt(o.iterations, 'options.iterations', fn, 0, 1e9);
  checkInt(o.restarts, 'options.restarts', fn, 1, 1e6);
  o.threads = checkThreads(o.threads, fn);
  checkBlockBytes(o.blockBytes, fn);
  checkEngine(o.engine, fn);
  if (o.init !== 'kmeans++' && o.init !== 'random') {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${fn}: options.init must be 'kmeans++' or 'random', got ${JSON.stringify(o.init)}`,
      { input: 'init' },
    );
  }
  if (!(o.minPointsPerCentroid >= 0)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${fn}: options.minPointsPerCentroid must be a number ≥ 0, got ${o.minPointsPerCentroid}`,
      { input: 'minPointsPerCentroid' },
    );
  }
  if (x.rows < k * o.minPointsPerCentroid) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${fn}: ${x.rows} points are too few for k = ${k} centroids with at least ${o.minPointsPerCentroid} points each (options.minPointsPerCentroid); expected N ≥ ${k * o.minPointsPerCentroid}`,
      { input: 'minPointsPerCentroid' },
    );
  }
  if (!(o.maxPointsPerCentroid >= 1)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${fn}: options.maxPointsPerCentroid must be ≥ 1 (or Infinity), got ${o.maxPointsPerCentroid}`,
      { input: 'maxPointsPerCentroid' },
    );
  }
  return o;
}

/** Options of {@link assign}. */
export interface AssignOptions {
  /** 0 = one per core, as everywhere in compress. @default 0 */
  threads?: number;
  /** @default 1 GiB — see {@link KMeansOptions.blockBytes} */
  blockBytes?: number;
  /** @default 'auto' — see {@link KMeansOptions.engine} */
  engine?: Engine;
}

/** The options of an {@link assign} call with their defaults, validated, after checking its inputs. */
export function resolveAssign(
  centroids: FeatureMatrix,
  x: FeatureMatrix,
  options: AssignOptions,
  fn: string,
): Resolved {
  checkRows(centroids, fn, 'centroids');
  checkRows(x, fn, 'x', 0);
  checkSameDim(centroids, 'centroids', x, 'x', fn);
  return {
    ...defaultKMeansOptions,
    threads: checkThreads(options.threads ?? defaultThreads(), fn),
    blockBytes: checkBlockBytes(options.blockBytes ?? defaultKMeansOptions.blockBytes, fn),
    engine: checkEngine(options.engine ?? defaultKMeansOptions.engine, fn),
  } as Resolved;
}
