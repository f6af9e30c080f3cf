import { CompressError, type FeatureMatrix, type Rng } from '@compress/core';
import { CALL_WORK, type Call, chunks, splitRange, Workspace } from './engine/engine.js';
import type { TopKEngine } from './engine/onnxruntime.js';
import type { Resolved } from './kmeans-options.js';

/** The assignment of a point with no centroid (yet). */
export const EMPTY = 0x7fffffff;
const SWEEP_BYTES = 256 * 1024;

/**
 * The engine side of a k-means run: one workspace holding the points (resident when they fit in
 * blockBytes, else one block streamed at a time), the centroids (raw and packed), and per-point
 * nearest-centroid state; `lloyd` runs one assignment (+ accumulation) pass.
 */
export class Points {
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
export function nativeWork(n: number, k: number, d: number): number {
  return k < 32 ? 0 : n * k * d;
}
