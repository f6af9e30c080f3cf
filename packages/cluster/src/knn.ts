import { CompressError, type FeatureMatrix, l2NormalizeRows, type ProgressListener } from '@compress/core';
import { CALL_WORK, type Call, chunks, defaultThreads, splitRange, Workspace } from './engine/engine.js';
import { checkEngine, type Engine, resolveEngine, type TopKEngine } from './engine/onnxruntime.js';
import { checkBlockBytes, checkInt, checkRows, checkSameDim, checkThreads } from './validate.js';

/**
 * How rows are compared.
 * - `cosine`: cosine similarity, i.e. the inner product of L2-normalised rows (the paper's k-NN
 *   protocol); higher is better.
 * - `ip`: the inner product of the rows as given (faiss `IndexFlatIP`); higher is better.
 * - `l2`: the squared Euclidean distance (faiss `IndexFlatL2`, computed the same way as
 *   ‖q‖² + ‖x‖² − 2⟨q, x⟩); lower is better.
 */
export type Metric = 'cosine' | 'ip' | 'l2';

export interface KnnOptions {
  /**
   * How rows are compared (see {@link Metric}).
   * @default 'cosine' — the paper's k-NN evaluation (cosine similarity of the features)
   */
  metric?: Metric;
  /**
   * Threads to use: worker threads sharing one WebAssembly memory (and onnxruntime's intra-op
   * threads); 1 runs on the calling thread; 0 is one per core (`os.availableParallelism()`), as
   * everywhere in compress.
   * @default 0 — one per core; faiss also uses every core
   */
  threads?: number;
  /**
   * Bytes of base rows brought into the engine per block (twice that is held: the rows and their
   * packed copy), and the most bytes of queries (with their top-k lists) held at once. The engine's
   * memory is about 2·blockBytes + min(queries, blockBytes), whatever N: base and queries larger than
   * that are streamed block by block, never a full score matrix.
   * @default 256 MiB — large enough that per-block costs vanish, small beside the inputs at scale
   */
  blockBytes?: number;
  /**
   * What runs the products: `wasm` (the package's WebAssembly SIMD kernels, always there),
   * `onnxruntime` (onnxruntime-node's native matrix product, about twice as fast on the same cores;
   * an optional peer dependency), or `auto`: onnxruntime when it is installed and the search is
   * large (≥ 5·10⁷ multiply-adds), else wasm. Results agree up to float32 rounding of the scores.
   * @default 'auto'
   */
  engine?: Engine;
  /** Called after every (query group, base block) pair with `phase: 'knn'`, `unit: 'blocks'`. */
  onProgress?: ProgressListener;
}

export const defaultKnnOptions: Required<Omit<KnnOptions, 'onProgress' | 'threads'>> = {
  metric: 'cosine',
  blockBytes: 256 * 2 ** 20,
  engine: 'auto',
};

/** Neighbours of every query, best first: row i of `indices`/`scores` (k entries) belongs to query i. */
export interface KnnResult {
  /** Base-row indices, queries × k, row-major; ties in score go to the lower index. */
  indices: Int32Array;
  /** Their scores, queries × k: similarity for `cosine`/`ip` (descending), squared distance for `l2` (ascending). */
  scores: Float32Array;
  /** Neighbours per query. */
  k: number;
}

const METRICS: readonly Metric[] = ['cosine', 'ip', 'l2'];
/** Panels (8 base rows) swept by a strip of queries before moving on: about 256 KiB, half of L2. */
const L2_BLOCK_BYTES = 256 * 1024;

/**
 * Exact k-nearest-neighbour search: for every query row, the `k` base rows of best score under
 * `metric`, best first, ties broken by the lower base index. Same results as a brute-force search
 * (and as faiss `IndexFlatIP`/`IndexFlatL2`), computed as a blocked float32 matrix product with the
 * top-k selection fused into it, on WebAssembly SIMD over all cores; memory stays
 * O(N·D inputs + block) — no N×N matrix is ever formed.
 *
 * @param base the rows searched, N × D
 * @param queries the rows to find neighbours for, Q × D
 * @param k neighbours per query, 1 ≤ k ≤ N
 * @example
 * const { indices, scores } = await knnSearch(train, test, 20, { metric: 'cosine' });
 * // indices[i * 20 + j]: j-th nearest train row of test row i
 */
export async function knnSearch(
  base: FeatureMatrix,
  queries: FeatureMatrix,
  k: number,
  options: KnnOptions = {},
): Promise<KnnResult> {
  const fn = 'knnSearch';
  const metric = options.metric ?? defaultKnnOptions.metric;
  if (!METRICS.includes(metric)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${fn}: options.metric must be one of ${METRICS.map((m) => `'${m}'`).join(', ')}, got ${JSON.stringify(metric)}`,
      { input: 'metric' },
    );
  }
  const threads = checkThreads(options.threads ?? defaultThreads(), fn);
  const blockBytes = checkBlockBytes(options.blockBytes ?? defaultKnnOptions.blockBytes, fn);
  checkRows(base, fn, 'base');
  checkRows(queries, fn, 'queries', 0);
  checkSameDim(base, 'base', queries, 'queries', fn);
  checkInt(k, 'k', fn, 1, base.rows, ` (the number of base rows)`);
  const engine = checkEngine(options.engine ?? defaultKnnOptions.engine, fn);

  const native = await resolveEngine(engine, queries.rows * base.rows * base.dim, fn);
  if (native !== null)
    return knnNative(native, base, queries, k, metric, threads, blockBytes, options.onProgress);

  const nb = base.rows;
  const nq = queries.rows;
  const d = base.dim;
  const indices = new Int32Array(nq * k);
  const scores = new Float32Array(nq * k);
  if (nq === 0) return { indices, scores, k };
  const l2 = metric === 'l2' ? 1 : 0;
  const normalize = metric === 'cosine';

  // Sizes: a base block (staging rows + packed panels) of ≤ blockBytes, query groups of ≤ blockBytes.
  const blockRows = Math.min(roundUp(nb, 8), Math.max(8, Math.floor(blockBytes / (8 * d) / 8) * 8));
  const groupRows = Math.min(nq, Math.max(4, Math.floor(blockBytes / (4 * d + 8 * k) / 4) * 4));
  // Few queries: split the base between threads instead, each with its own top-k lists, merged here.
  const splitBase = nq < 32 * threads && threads > 1;
  const parts = splitBase ? threads : 1;
  const sweep = Math.max(1, Math.floor(L2_BLOCK_BYTES / (32 * d)));

  const ws = new Workspace(
    blockRows * d * 4 * 2 + blockRows * 4 + groupRows * d * 4 + groupRows * k * 8 * parts + 64 * 8,
    threads,
  );
  try {
    const staging = ws.alloc(blockRows * d * 4);
    const panels = ws.alloc(blockRows * d * 4);
    const norms = l2 ? ws.alloc(blockRows * 4) : 0;
    const qptr = ws.alloc(groupRows * d * 4);
    const heaps: { hs: number; hi: number }[] = [];
    for (let p = 0; p < parts; p++)
      heaps.push({ hs: ws.alloc(groupRows * k * 4), hi: ws.alloc(groupRows * k * 4) });

    const nBlocks = Math.ceil(nb / blockRows);
    const nGroups = Math.ceil(nq / groupRows);
    let loaded = -1;
    const loadBlock = async (b: number) => {
      if (loaded === b) return;
      const r0 = b * blockRows;
      const rows = Math.min(blockRows, nb - r0);
      ws.f32(staging, rows * d).set(base.data.subarray(r0 * d, (r0 + rows) * d));
      const per = Math.ceil(CALL_WORK / 4 / (8 * d));
      const batches = splitRange(Math.ceil(rows / 8), threads * 2).map(([pa, pb]): Call[] => {
        const prep: Call[] = [];
        for (const [p0, p1] of chunks(pa, pb, per)) {
          if (normalize) prep.push(['normalize_rows', staging, p0 * 8, Math.min(rows, p1 * 8), d]);
          prep.push(['pack_panels', staging, rows, d, panels, norms, p0, p1]);
        }
        return prep;
      });
      await ws.run(batches, rows * d * 4);
      loaded = b;
    };

    let done = 0;
    for (let g = 0; g < nGroups; g++) {
      const q0 = g * groupRows;
      const qn = Math.min(groupRows, nq - q0);
      ws.f32(qptr, qn * d).set(queries.data.subarray(q0 * d, (q0 + qn) * d));
      if (normalize) {
        await ws.run(
          splitRange(qn, threads).map(([a, b]): Call[] =>
            chunks(a, b, CALL_WORK / 4 / d).map(([r0, r1]): Call => ['normalize_rows', qptr, r0, r1, d]),
          ),
          qn * d * 4,
        );
      }
      for (const h of heaps) {
        ws.f32(h.hs, qn * k).fill(Number.NEGATIVE_INFINITY);
        ws.i32(h.hi, qn * k).fill(EMPTY);
      }
      for (let b = 0; b < nBlocks; b++) {
        await loadBlock(b);
        const idx0 = b * blockRows;
        const rows = Math.min(blockRows, nb - idx0);
        const np = Math.ceil(rows / 8);
        // One call per piece of ~CALL_WORK: the queries of a range against a run of whole sweeps of
        // panels, in panel order (the heaps rely on base rows arriving in index order).
        const search = (
          a: number,
          c: number,
          p0: number,
          p1: number,
          h: { hs: number; hi: number },
        ): Call[] =>
          chunks(p0, p1, Math.max(sweep, CALL_WORK / (8 * d * Math.max(1, c - a))), sweep).map(
            ([pa, pb]): Call => [
              'knn_search',
              qptr,
              a,
              c,
              d,
              panels,
              norms,
              pa,
              pb,
              rows,
              idx0,
              k,
              h.hs,
              h.hi,
              sweep,
              l2,
            ],
          );
        const batches: Call[][] = splitBase
          ? splitRange(np, parts).map(([p0, p1], i) => search(0, qn, p0, p1, heaps[i]!))
          : splitRange(qn, threads * 4, 4).map(([a, c]) => search(a, c, 0, np, heaps[0]!));
        await ws.run(batches, qn * rows * d);
        options.onProgress?.({
          phase: 'knn',
          done: ++done,
          total: nGroups * nBlocks,
          unit: 'blocks',
          metrics: { memoryBytes: ws.bytes },
        });
      }
      collect(ws, heaps, qn, k, q0, indices, scores, l2 ? queries : null);
      if (nBlocks > 1) loaded = -1;
    }
    return { indices, scores, k };
  } finally {
    ws.close();
  }
}

/**
 * knnSearch on onnxruntime: base blocks (normalised once each for cosine) against query groups, each pair one
 * Gemm + TopK call; every block's k best are merged into the running lists (blocks arrive in index
 * order, so on equal scores the kept entry, of lower index, stays first). Memory: a base block and
 * a query group copy plus onnxruntime's m × n score block, all sized by blockBytes.
 */
async function knnNative(
  native: TopKEngine,
  base: FeatureMatrix,
  queries: FeatureMatrix,
  k: number,
  metric: Metric,
  threads: number,
  blockBytes: number,
  onProgress: ProgressListener | undefined,
): Promise<KnnResult> {
  const nb = base.rows;
  const nq = queries.rows;
  const d = base.dim;
  const l2 = metric === 'l2';
  const normalize = metric === 'cosine';
  const budget = Math.floor(blockBytes / 4);
  // 512 × 8192 score blocks (16 MiB) measured best: large enough for the product, small enough that
  // TopK reads them back from cache.
  const groupRows = Math.min(nq, 512, Math.max(1, Math.floor(budget / (4 * d))));
  const blockRows = Math.min(
    nb,
    Math.max(k, Math.min(8192, Math.floor((budget - groupRows * d) / (groupRows + d)))),
  );
  const scores = new Float32Array(nq * k).fill(Number.NEGATIVE_INFINITY);
  const indices = new Int32Array(nq * k).fill(EMPTY);
  const candS = new Float32Array(k);
  const candI = new Int32Array(k);
  const nBlocks = Math.ceil(nb / blockRows);
  const nGroups = Math.ceil(nq / groupRows);
  let done = 0;
  for (let b = 0; b < nBlocks; b++) {
    const r0 = b * blockRows;
    const rows = Math.min(blockRows, nb - r0);
    let block = base.data.subarray(r0 * d, (r0 + rows) * d);
    if (normalize) block = l2NormalizeRows({ rows, dim: d, data: block }).data;
    let negNorms: Float32Array | null = null;
    if (l2) {
      negNorms = new Float32Array(rows);
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let j = 0; j < d; j++) s += block[r * d + j]! * block[r * d + j]!;
        negNorms[r] = -s;
      }
    }
    const kk = Math.min(k, rows);
    for (let g = 0; g < nGroups; g++) {
      const q0 = g * groupRows;
      const qn = Math.min(groupRows, nq - q0);
      // Queries go in as they are: a query's scale does not change its ranking, so for cosine its
      // k scores are divided by its norm at the end instead of normalising it for every base block.
      const group = queries.data.subarray(q0 * d, (q0 + qn) * d);
      const top = await native.topk(group, qn, block, rows, d, kk, negNorms, threads);
      for (let q = 0; q < qn; q++) {
        const out = (q0 + q) * k;
        // Merge the kept list (lower indices) with this block's kk best, both best first.
        let a = 0;
        let c = 0;
        for (let j = 0; j < k; j++) {
          let takeNew = false;
          while (c < kk && !Number.isFinite(top.values[q * kk + c]!)) c++; // overflowed scores are dropped
          if (c < kk) takeNew = a >= k || top.values[q * kk + c]! > scores[out + a]!;
          if (takeNew) {
            candS[j] = top.values[q * kk + c]!;
            candI[j] = r0 + Number(top.indices[q * kk + c]!);
            c++;
          } else {
            candS[j] = scores[out + a]!;
            candI[j] = indices[out + a]!;
            a++;
          }
        }
        scores.set(candS, out);
        indices.set(candI, out);
      }
      onProgress?.({
        phase: 'knn',
        done: ++done,
        total: nGroups * nBlocks,
        unit: 'blocks',
        metrics: { memoryBytes: (rows * d + qn * d + qn * rows) * 4 },
      });
    }
  }
  for (let q = 0; q < nq; q++) {
    let qn2 = 0;
    if (l2 || normalize)
      for (let j = 0; j < d; j++) qn2 += queries.data[q * d + j]! * queries.data[q * d + j]!;
    const inv = normalize ? 1 / Math.max(Math.sqrt(qn2), 1e-12) : 1;
    for (let j = 0; j < k; j++) {
      const at = q * k + j;
      if (indices[at] === EMPTY) {
        throw new CompressError(
          'NON_FINITE',
          `knnSearch: query ${q} has fewer than k = ${k} finite scores; the inputs are too large for float32 products`,
          { input: 'queries' },
        );
      }
      if (l2) scores[at] = Math.max(0, qn2 - scores[at]!);
      else if (normalize) scores[at] = scores[at]! * inv;
    }
  }
  return { indices, scores, k };
}

/** The index of an empty top-k slot. */
const EMPTY = 0x7fffffff;

function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

/**
 * Sorts each query's kept candidates (from every part's heap) by score, best first, ties by lower
 * index, and writes the first k to the output (L2: converted back to squared distances).
 */
function collect(
  ws: Workspace,
  heaps: { hs: number; hi: number }[],
  qn: number,
  k: number,
  q0: number,
  indices: Int32Array,
  scores: Float32Array,
  l2Queries: FeatureMatrix | null,
): void {
  const m = heaps.length * k;
  const hs = heaps.map((h) => ws.f32(h.hs, qn * k));
  const hi = heaps.map((h) => ws.i32(h.hi, qn * k));
  const s = new Float32Array(m);
  const ix = new Int32Array(m);
  const order = Array.from({ length: m }, (_, i) => i);
  const cmp = (a: number, b: number) => s[b]! - s[a]! || ix[a]! - ix[b]!;
  const d = l2Queries?.dim ?? 0;
  for (let q = 0; q < qn; q++) {
    for (let p = 0; p < heaps.length; p++) {
      s.set(hs[p]!.subarray(q * k, q * k + k), p * k);
      ix.set(hi[p]!.subarray(q * k, q * k + k), p * k);
    }
    for (let i = 0; i < m; i++) order[i] = i;
    if (m > 1) order.sort(cmp);
    let qn2 = 0;
    if (l2Queries !== null) {
      const o = (q0 + q) * d;
      for (let j = 0; j < d; j++) qn2 += l2Queries.data[o + j]! * l2Queries.data[o + j]!;
    }
    const out = (q0 + q) * k;
    for (let j = 0; j < k; j++) {
      const at = order[j]!;
      const id = ix[at]!;
      if (id === EMPTY) {
        throw new CompressError(
          'NON_FINITE',
          `knnSearch: query ${q0 + q} has fewer than k = ${k} finite scores; the inputs are too large for float32 products`,
          { input: 'queries' },
        );
      }
      indices[out + j] = id;
      scores[out + j] = l2Queries === null ? s[at]! : Math.max(0, qn2 - s[at]!);
    }
  }
}
