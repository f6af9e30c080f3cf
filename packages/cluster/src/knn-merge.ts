import { CompressError } from '@compress/core';
import type { KnnResult, Metric } from './knn.js';

/** One shard's k-NN result, for {@link mergeKnnResults}. */
export interface KnnPart {
  /**
   * `knnSearch(shardBase, queries, min(k, shardBase.rows), { metric })`: the shard's own top-k, its
   * indices counted from the shard's first row.
   */
  result: KnnResult;
  /** Index, in the whole base, of the shard's first row: the shard holds rows offset … offset + rows − 1. */
  offset: number;
  /**
   * The shard's number of base rows. Optional: when given, its range is checked exactly (indices
   * below it, no overlap with another part's range); without it, the range is known only as far as
   * the result shows (at least k rows, at least up to the largest index found).
   */
  rows?: number;
}

export interface MergeKnnOptions {
  /**
   * Neighbours per query of the merged result, at most the parts' neighbours together.
   * @default the largest k of the parts
   */
  k?: number;
}

const METRICS: readonly Metric[] = ['cosine', 'ip', 'l2'];
const MAX_INDEX = 0x7fffffff;

/**
 * Merges k-NN results computed shard by shard into the result over the whole base: for every query
 * the `k` best rows of all the parts, with global indices (a part's index plus its offset), best
 * first — descending score for `cosine`/`ip`, ascending squared distance for `l2` — and equal scores
 * ordered by the lower global index. With every part from `knnSearch` on the same engine, this is
 * what `knnSearch` over the whole base returns: the same indices and the same scores bit for bit
 * (a base row's score does not depend on the rows beside it). One exception, on `l2` and on
 * onnxruntime's `cosine`, where the returned score is rounded once more after the ranking: two rows
 * of different shards whose scores round to the same float32 come in index order here but in the
 * order of their unrounded scores from `knnSearch`.
 *
 * Each part must hold `min(k, rows)` neighbours per query (more is fine): a shard with fewer base
 * rows than `k` contributes all of them, so the merged k is at most the parts' neighbours together.
 * Parts may come in any order and need not cover the whole base (a gap is rows left out), but their
 * ranges must not overlap. Memory: the output plus one cursor per part; time O(queries · k · parts).
 *
 * @param parts one result per shard, with the global index of the shard's first row
 * @param metric the metric every part was searched with
 * @example
 * // base rows 0…59 999 in two shards, searched where each shard lives:
 * const a = await knnSearch(shard0, queries, 20); // rows 0…29 999
 * const b = await knnSearch(shard1, queries, 20); // rows 30 000…59 999
 * const { indices, scores } = mergeKnnResults([{ result: a, offset: 0 }, { result: b, offset: 30000 }], 'cosine');
 */
export function mergeKnnResults(
  parts: readonly KnnPart[],
  metric: Metric,
  options: MergeKnnOptions = {},
): KnnResult {
  const fn = 'mergeKnnResults';
  if (!METRICS.includes(metric)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${fn}: metric must be one of ${METRICS.map((m) => `'${m}'`).join(', ')}, got ${JSON.stringify(metric)}`,
      { input: 'metric' },
    );
  }
  if (!Array.isArray(parts) || parts.length === 0) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${fn}: parts must be a non-empty array of { result, offset }`,
      {
        input: 'parts',
      },
    );
  }
  const shapes = parts.map((part, p) => checkPartShape(part, p, fn));
  const nq = shapes[0]!.queries;
  for (let p = 1; p < shapes.length; p++) {
    if (shapes[p]!.queries !== nq) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `${fn}: parts[${p}] has ${shapes[p]!.queries} queries, parts[0] has ${nq}; every part must answer the same queries`,
        { input: 'parts' },
      );
    }
  }
  const candidates = shapes.reduce((s, x) => s + x.k, 0);
  const k = options.k ?? Math.max(...shapes.map((s) => s.k));
  if (!Number.isInteger(k) || k < 1 || k > candidates) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${fn}: options.k must be an integer from 1 to ${candidates} (the parts' neighbours per query together), got ${k}`,
      { input: 'k' },
    );
  }
  const extent = parts.map((part, p) => checkPartValues(part, p, k, nq, metric, fn));

  // Ranges must not overlap; in offset order, equal scores then go to the earlier part (lower index).
  const order = parts.map((_, p) => p).sort((a, b) => parts[a]!.offset - parts[b]!.offset);
  for (let i = 1; i < order.length; i++) {
    const a = order[i - 1]!;
    const b = order[i]!;
    const end = parts[a]!.offset + extent[a]!.rows;
    if (parts[b]!.offset < end) {
      const atLeast = extent[a]!.exact ? '' : ' at least';
      throw new CompressError(
        'INVALID_ARGUMENT',
        `${fn}: parts[${a}] and parts[${b}] overlap: parts[${a}] covers${atLeast} base rows ${parts[a]!.offset}…${end - 1}, parts[${b}] starts at ${parts[b]!.offset}; shards must be disjoint ranges of the base`,
        { input: 'parts' },
      );
    }
  }

  const np = order.length;
  const ks = order.map((p) => shapes[p]!.k);
  const offsets = order.map((p) => parts[p]!.offset);
  const srcI = order.map((p) => parts[p]!.result.indices);
  const srcS = order.map((p) => parts[p]!.result.scores);
  const at = new Int32Array(np);
  const indices = new Int32Array(nq * k);
  const scores = new Float32Array(nq * k);
  const lt = metric === 'l2';
  for (let q = 0; q < nq; q++) {
    at.fill(0);
    for (let j = 0; j < k; j++) {
      let best = -1;
      let bestScore = 0;
      for (let i = 0; i < np; i++) {
        const c = at[i]!;
        if (c >= ks[i]!) continue;
        const s = srcS[i]![q * ks[i]! + c]!;
        // Strictly better only: on equal scores the earlier part, of lower indices, stays.
        if (best < 0 || (lt ? s < bestScore : s > bestScore)) {
          best = i;
          bestScore = s;
        }
      }
      const c = at[best]!++;
      indices[q * k + j] = offsets[best]! + srcI[best]![q * ks[best]! + c]!;
      scores[q * k + j] = bestScore;
    }
  }
  return { indices, scores, k };
}

/** Checks a part's container shapes; returns its k and query count. */
function checkPartShape(part: KnnPart, p: number, fn: string): { k: number; queries: number } {
  const name = `parts[${p}]`;
  const bad = (what: string, code: 'INVALID_ARGUMENT' | 'SHAPE_MISMATCH' = 'INVALID_ARGUMENT') =>
    new CompressError(code, `${fn}: ${name}${what}`, { input: 'parts' });
  if (part === null || typeof part !== 'object' || part.result === null || typeof part.result !== 'object')
    throw bad(' must be { result: KnnResult, offset: number }');
  const { indices, scores, k } = part.result;
  if (!(indices instanceof Int32Array)) throw bad('.result.indices must be an Int32Array');
  if (!(scores instanceof Float32Array)) throw bad('.result.scores must be a Float32Array');
  if (!Number.isInteger(k) || k < 1) throw bad(`.result.k must be an integer ≥ 1, got ${k}`);
  if (indices.length % k !== 0 || scores.length !== indices.length) {
    throw bad(
      `.result: expected queries × k values (k = ${k}) in both indices and scores, found ${indices.length} indices and ${scores.length} scores`,
      'SHAPE_MISMATCH',
    );
  }
  const { offset, rows } = part;
  if (!Number.isInteger(offset) || offset < 0 || offset > MAX_INDEX)
    throw bad(`.offset must be an integer from 0 to ${MAX_INDEX}, got ${offset}`);
  if (rows !== undefined && (!Number.isInteger(rows) || rows < 1 || rows > MAX_INDEX - offset + 1))
    throw bad(
      `.rows must be an integer from 1 to ${MAX_INDEX - offset + 1} (global indices are int32), got ${rows}`,
    );
  return { k, queries: indices.length / k };
}

/**
 * Checks a part's values: finite scores best first, indices inside the shard, enough neighbours
 * for the merged k. Returns the rows the part is known to cover (exactly when `rows` was given).
 */
function checkPartValues(
  part: KnnPart,
  p: number,
  k: number,
  nq: number,
  metric: Metric,
  fn: string,
): { rows: number; exact: boolean } {
  const name = `parts[${p}]`;
  const { indices, scores, k: kp } = part.result;
  const bad = (what: string, code: 'INVALID_ARGUMENT' | 'NON_FINITE' = 'INVALID_ARGUMENT') =>
    new CompressError(code, `${fn}: ${name}${what}`, { input: 'parts' });
  if (part.rows !== undefined && kp > part.rows)
    throw bad(`.result.k is ${kp}, more neighbours than the shard's ${part.rows} rows`);
  const sign = metric === 'l2' ? -1 : 1; // of (previous − next) in best-first order
  let top = -1;
  for (let i = 0; i < indices.length; i++) {
    const ix = indices[i]!;
    if (ix < 0 || (part.rows !== undefined && ix >= part.rows)) {
      const range = part.rows === undefined ? '≥ 0' : `from 0 to ${part.rows - 1} (its rows)`;
      throw bad(
        `.result.indices: query ${Math.floor(i / kp)} has index ${ix}, expected ${range}; indices count from the shard's first row`,
      );
    }
    if (ix > top) top = ix;
    const s = scores[i]!;
    if (!Number.isFinite(s))
      throw bad(
        `.result.scores: query ${Math.floor(i / kp)} has score ${s}; expected finite numbers`,
        'NON_FINITE',
      );
    if (i % kp !== 0 && (scores[i - 1]! - s) * sign < 0) {
      const order = metric === 'l2' ? 'ascending distances' : 'descending similarities';
      throw bad(
        `.result.scores: query ${Math.floor(i / kp)} is not best first for metric '${metric}' (${scores[i - 1]} then ${s}, expected ${order}); was it searched with another metric?`,
      );
    }
  }
  if (part.offset + top > MAX_INDEX)
    throw bad(`: offset ${part.offset} + index ${top} is beyond int32 global indices (${MAX_INDEX})`);
  if (part.rows !== undefined && kp < Math.min(k, part.rows)) {
    throw bad(
      `.result.k is ${kp}, but the shard has ${part.rows} rows: searching it with k = ${Math.min(k, part.rows)} is needed for merged k = ${k}`,
    );
  }
  if (part.rows === undefined && kp < k && nq > 0) {
    // Fewer neighbours than k: only right when the shard has no more rows, i.e. every query lists
    // each of its rows 0 … kp − 1.
    const seen = new Int32Array(kp).fill(-1);
    for (let q = 0; q < nq; q++) {
      for (let j = 0; j < kp; j++) {
        const ix = indices[q * kp + j]!;
        if (ix >= kp || seen[ix] === q) {
          throw bad(
            `.result.k is ${kp} < merged k = ${k}, but query ${q} does not list every row 0…${kp - 1}: a part may hold fewer than k neighbours only when its shard has no more rows (give its rows to check)`,
          );
        }
        seen[ix] = q;
      }
    }
  }
  if (part.rows !== undefined) return { rows: part.rows, exact: true };
  return { rows: Math.max(kp, top + 1), exact: false };
}
