import {
  CompressError,
  type FeatureMatrix,
  type ProgressEvent,
  type ProgressListener,
  Rng,
} from '@compress/core';
import { CALL_WORK, type Call, chunks, defaultThreads, splitRange, Workspace } from './engine/engine.js';
import { checkEngine, type Engine, resolveEngine, type TopKEngine } from './engine/onnxruntime.js';
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

/** Relative perturbation when a centroid is split to re-seed an empty cluster (faiss's value). */
const SPLIT_EPS = 1 / 1024;
const EMPTY = 0x7fffffff;
const SWEEP_BYTES = 256 * 1024;

type Resolved = Required<Omit<KMeansOptions, 'onProgress'>>;

function resolve(x: FeatureMatrix, k: number, options: KMeansOptions, fn: string): Resolved {
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

/** Options of {@link assign}. */
export interface AssignOptions {
  /** @default os.availableParallelism() */
  threads?: number;
  /** @default 1 GiB — see {@link KMeansOptions.blockBytes} */
  blockBytes?: number;
  /** @default 'auto' — see {@link KMeansOptions.engine} */
  engine?: Engine;
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
  checkRows(centroids, fn, 'centroids');
  checkRows(x, fn, 'x', 0);
  checkSameDim(centroids, 'centroids', x, 'x', fn);
  const o = {
    ...defaultKMeansOptions,
    threads: checkThreads(options.threads ?? defaultThreads(), fn),
    blockBytes: checkBlockBytes(options.blockBytes ?? defaultKMeansOptions.blockBytes, fn),
    engine: checkEngine(options.engine ?? defaultKMeansOptions.engine, fn),
  } as Resolved;
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

/**
 * The engine side of a k-means run: one workspace holding the points (resident when they fit in
 * blockBytes, else one block streamed at a time), the centroids (raw and packed), and per-point
 * nearest-centroid state; `lloyd` runs one assignment (+ accumulation) pass.
 */
class Points {
  readonly ws: Workspace;
  private readonly d: number;
  private readonly k: number;
  private readonly blockRows: number;
  private readonly threads: number;
  private readonly parts: number;
  private readonly xptr: number;
  private readonly craw: number;
  private readonly cpanels: number;
  private readonly cnorms: number;
  private readonly best: number;
  private readonly assignPtr: number;
  private readonly prev: number;
  private readonly dist: number;
  private readonly sums: number[];
  private readonly counts: number[];
  private readonly outs: number[];
  /** k-means++ potentials: min distance² to the chosen centroids, and one buffer per candidate. */
  private readonly seedBufs: number[] = [];
  private readonly seedRows: number;
  private readonly seedCands: number;
  private readonly trials: number;
  /** The matrix whose rows are resident (the whole of it), if any. */
  resident: FeatureMatrix | null = null;
  /** onnxruntime, when it runs the assignment product (else the fused WebAssembly kernel does). */
  native: TopKEngine | null = null;
  private prevOf: FeatureMatrix | null = null;

  constructor(o: Resolved, d: number, k: number, maxRows: number) {
    this.d = d;
    this.k = k;
    this.threads = o.threads;
    this.blockRows = Math.max(4, Math.min(maxRows, Math.floor(o.blockBytes / (4 * d))));
    this.parts = this.threads === 1 ? 1 : this.threads * 2;
    this.trials = 2 + Math.floor(Math.log(k));
    this.seedRows = o.init === 'kmeans++' ? maxRows : 0;
    const kp = Math.ceil(k / 8) * 8;
    const perPart = k * d * 8 + k * 4 + 16 + 3 * 64;
    const bytes =
      this.blockRows * d * 4 +
      kp * d * 4 * 2 +
      kp * 4 +
      maxRows * 4 * 4 +
      (this.trials + 1) * (this.seedRows * 4 + 64) +
      this.trials * d * 4 +
      this.parts * perPart +
      1024;
    this.ws = new Workspace(bytes, this.threads);
    const ws = this.ws;
    this.xptr = ws.alloc(this.blockRows * d * 4);
    this.craw = ws.alloc(kp * d * 4);
    this.cpanels = ws.alloc(kp * d * 4);
    this.cnorms = ws.alloc(kp * 4);
    this.best = ws.alloc(maxRows * 4);
    this.assignPtr = ws.alloc(maxRows * 4);
    this.prev = ws.alloc(maxRows * 4);
    this.dist = ws.alloc(maxRows * 4);
    for (let t = 0; t <= this.trials; t++) this.seedBufs.push(ws.alloc(this.seedRows * 4));
    this.seedCands = ws.alloc(this.trials * d * 4);
    this.sums = [];
    this.counts = [];
    this.outs = [];
    for (let p = 0; p < this.parts; p++) {
      this.sums.push(ws.alloc(k * d * 8));
      this.counts.push(ws.alloc(k * 4));
      this.outs.push(ws.alloc(16));
    }
  }

  /** Makes rows r0…r1 of m available at `this.xptr` (copying unless already resident); returns their offset. */
  private load(m: FeatureMatrix, r0: number, r1: number): void {
    if (this.resident === m) return;
    this.ws.f32(this.xptr, (r1 - r0) * this.d).set(m.data.subarray(r0 * this.d, r1 * this.d));
    this.resident = r0 === 0 && r1 === m.rows ? m : null;
  }

  /**
   * The assignment step on onnxruntime for rows r0…r1 of m: nearest centroid by the largest
   * 2⟨x, c⟩ − ‖c‖² (ties to the lower index, as the fused kernel), written where the kernel would.
   */
  private async nativeAssign(
    m: FeatureMatrix,
    r0: number,
    r1: number,
    centroids: Float32Array,
    negNorms: Float32Array,
  ): Promise<void> {
    const { d, k } = this;
    const out = this.ws.i32(this.assignPtr + r0 * 4, r1 - r0);
    // Score blocks of ≤ 4 Mi floats.
    const step = Math.max(1, Math.min(4096, Math.floor(2 ** 22 / k)));
    for (let a = r0; a < r1; a += step) {
      const b = Math.min(r1, a + step);
      const top = await this.native!.topk(
        m.data.subarray(a * d, b * d),
        b - a,
        centroids,
        k,
        d,
        1,
        negNorms,
        this.threads,
      );
      for (let i = 0; i < b - a; i++) {
        out[a - r0 + i] = Number.isFinite(top.values[i]!) ? Number(top.indices[i]!) : EMPTY;
      }
    }
  }

  /** Forgets the previous assignment, so the next pass counts every point as changed. */
  resetChanges(): void {
    this.prevOf = null;
  }

  /** Whether all of m fits at once (then it is loaded once and stays). */
  fits(m: FeatureMatrix): boolean {
    return m.rows <= this.blockRows;
  }

  /** Ensures m is resident for k-means++ seeding; refuses streamed inputs. */
  requireResident(m: FeatureMatrix): number {
    if (!this.fits(m)) {
      throw new CompressError(
        'UNSUPPORTED',
        `kmeans: init 'kmeans++' needs the ${m.rows} × ${m.dim} points in the engine at once (${((m.rows * m.dim * 4) / 2 ** 20).toFixed(0)} MiB > options.blockBytes); raise options.blockBytes (≤ 3 GiB), sample with options.maxPointsPerCentroid, or use init 'random'`,
        { input: 'init' },
      );
    }
    this.load(m, 0, m.rows);
    return this.xptr;
  }

  /**
   * Greedy k-means++ on the resident rows (n of them): centroid 0 is row `first`; each next one is
   * the best (lowest potential Σ min D²) of `trials` rows drawn with probability ∝ D². One engine
   * round trip per centroid, every candidate evaluated in it.
   */
  async seed(train: FeatureMatrix, k: number, first: number, rng: Rng): Promise<Float32Array> {
    const { ws, d } = this;
    const n = train.rows;
    const c = new Float32Array(k * d);
    const ranges = splitRange(n, this.parts);
    let mind = this.seedBufs[0]!;
    let free = this.seedBufs.slice(1);
    ws.f32(mind, n).fill(Number.POSITIVE_INFINITY);
    const evaluate = async (rows: number[], outs: number[]) => {
      const cands = rows.map((row, t) => {
        ws.f32(this.seedCands + t * d * 4, d).set(train.data.subarray(row * d, row * d + d));
        return this.seedCands + t * d * 4;
      });
      const res = await ws.run(
        ranges.map(([a, b]): Call[] =>
          chunks(a, b, CALL_WORK / d).flatMap(([r0, r1]) =>
            cands.map((cp, t): Call => ['min_sqdist', this.xptr, r0, r1, d, cp, mind, outs[t]!]),
          ),
        ),
        n * d * rows.length,
      );
      // res[range] holds (chunk, trial) results, chunk-major → per trial, the sum of each range.
      return rows.map((_, t) =>
        res.map((r) => {
          let sum = 0;
          for (let i = t; i < r.length; i += rows.length) sum += r[i]!;
          return sum;
        }),
      );
    };
    let chosen = first;
    let partSums = (await evaluate([first], [mind]))[0]!;
    c.set(train.data.subarray(first * d, first * d + d), 0);
    for (let i = 1; i < k; i++) {
      const total = partSums.reduce((a, b) => a + b, 0);
      const rows: number[] = [];
      for (let t = 0; t < this.trials; t++)
        rows.push(total > 0 ? this.draw(ranges, partSums, mind, rng.next() * total) : -1);
      for (let t = 0; t < rows.length; t++) if (rows[t]! < 0) rows[t] = rng.int(n); // fewer distinct points than k
      const outs = free.slice(0, rows.length);
      const sums = await evaluate(rows, outs);
      let best = 0;
      let bestPot = Number.POSITIVE_INFINITY;
      for (let t = 0; t < rows.length; t++) {
        const pot = sums[t]!.reduce((a, b) => a + b, 0);
        if (pot < bestPot) {
          bestPot = pot;
          best = t;
        }
      }
      chosen = rows[best]!;
      c.set(train.data.subarray(chosen * d, chosen * d + d), i * d);
      // The winner's potentials become the current ones; the old buffer is free again.
      const next = outs[best]!;
      free = [...free.filter((b) => b !== next), mind];
      mind = next;
      partSums = sums[best]!;
    }
    return c;
  }

  /** The row where the running sum of potentials passes `target` (range by range). */
  private draw(ranges: [number, number][], sums: number[], mind: number, target: number): number {
    for (let p = 0; p < ranges.length; p++) {
      if (target < sums[p]! || p === ranges.length - 1) {
        const row = this.ws.kernels.cumsum_find(mind, ranges[p]![0], ranges[p]![1], target);
        if (row >= 0) return row;
      }
      target -= sums[p]!;
    }
    return -1;
  }

  /**
   * One pass over m: nearest centroid of every row (fused blocked product + arg-max); with
   * `accumulate`, per-part float64 sums and counts for the update; always the exact Σ‖x − c‖².
   */
  async lloyd(
    m: FeatureMatrix,
    centroids: Float32Array,
    accumulate: boolean,
    wantDistances = false,
  ): Promise<{
    inertia: number;
    changed: number;
    sums?: Float64Array;
    counts?: Float64Array;
    assignments?: Int32Array;
    distances?: Float32Array;
  }> {
    const { ws, d, k } = this;
    const kp = Math.ceil(k / 8) * 8;
    const np = kp / 8;
    ws.f32(this.craw, k * d).set(centroids);
    ws.kernels.pack_panels(this.craw, k, d, this.cpanels, this.cnorms, 0, np);
    if (this.prevOf !== m) {
      ws.i32(this.prev, m.rows).fill(-1);
      this.prevOf = m;
    }
    for (let p = 0; p < this.parts; p++) {
      ws.f64(this.outs[p]!, 2).fill(0);
      if (accumulate) {
        ws.f64(this.sums[p]!, k * d).fill(0);
        ws.i32(this.counts[p]!, k).fill(0);
      }
    }
    const sweep = Math.max(1, Math.floor(SWEEP_BYTES / (32 * d)));
    let negNorms: Float32Array | null = null;
    if (this.native !== null) {
      negNorms = new Float32Array(k);
      for (let c = 0; c < k; c++) {
        let s = 0;
        for (let j = 0; j < d; j++) s += centroids[c * d + j]! * centroids[c * d + j]!;
        negNorms[c] = -s;
      }
    }
    for (let r0 = 0; r0 < m.rows; r0 += this.blockRows) {
      const r1 = Math.min(m.rows, r0 + this.blockRows);
      this.load(m, r0, r1);
      const rows = r1 - r0;
      const off = r0 * 4;
      if (this.native !== null) await this.nativeAssign(m, r0, r1, centroids, negNorms!);
      const ranges = splitRange(rows, this.parts, 4);
      const step = Math.max(4, CALL_WORK / (kp * d));
      const batches = ranges.map(([a, b], p): Call[] =>
        chunks(a, b, step, 4).flatMap(([r0, r1]): Call[] => [
          ...(this.native !== null
            ? []
            : ([
                ['heap_init', this.best + off + r0 * 4, this.assignPtr + off + r0 * 4, r1 - r0],
                [
                  'knn_search',
                  this.xptr,
                  r0,
                  r1,
                  d,
                  this.cpanels,
                  this.cnorms,
                  0,
                  np,
                  k,
                  0,
                  1,
                  this.best + off,
                  this.assignPtr + off,
                  sweep,
                  1,
                ],
              ] satisfies Call[])),
          [
            'kmeans_accumulate',
            this.xptr,
            r0,
            r1,
            d,
            this.craw,
            this.assignPtr + off,
            this.prev + off,
            accumulate ? this.sums[p]! : 0,
            accumulate ? this.counts[p]! : 0,
            this.dist + off,
            this.outs[p]!,
          ],
        ]),
      );
      await ws.run(batches, rows * kp * d);
    }
    let inertia = 0;
    let changed = 0;
    for (let p = 0; p < this.parts; p++) {
      const out = ws.f64(this.outs[p]!, 2);
      inertia += out[0]!;
      changed += out[1]!;
    }
    const result: Awaited<ReturnType<Points['lloyd']>> = { inertia, changed };
    if (accumulate) {
      const sums = new Float64Array(k * d);
      const counts = new Float64Array(k);
      for (let p = 0; p < this.parts; p++) {
        const s = ws.f64(this.sums[p]!, k * d);
        for (let i = 0; i < s.length; i++) sums[i]! += s[i]!;
        const c = ws.i32(this.counts[p]!, k);
        for (let i = 0; i < k; i++) counts[i]! += c[i]!;
      }
      result.sums = sums;
      result.counts = counts;
    } else {
      const a = ws.i32(this.assignPtr, m.rows);
      if (a.includes(EMPTY)) {
        throw new CompressError(
          'NON_FINITE',
          'kmeans: a point has no finite distance to any centroid (values too large for float32)',
          {
            input: 'x',
          },
        );
      }
      result.assignments = a.slice();
      if (wantDistances) result.distances = ws.f32(this.dist, m.rows).slice();
    }
    return result;
  }
}

/**
 * The work `auto` weighs for onnxruntime: one assignment pass's multiply-adds, counted only from 32
 * centroids on (below that the fused kernel is as fast: the product is too thin for the native one).
 */
function nativeWork(n: number, k: number, d: number): number {
  return k < 32 ? 0 : n * k * d;
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
