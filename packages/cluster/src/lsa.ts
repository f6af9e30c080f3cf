import { CompressError } from '@compress/core';
import { checkInt } from './validate.js';

export interface LinearSumAssignmentOptions {
  /**
   * Maximise the total instead of minimising it (e.g. the paper's cluster alignment, which maximises
   * the summed precision of cluster → class).
   * @default false — minimise, as scipy's linear_sum_assignment does
   */
  maximize?: boolean;
}

export interface LinearSumAssignment {
  /** Assigned rows, ascending; min(rows, cols) of them. */
  rowIndices: Int32Array;
  /** The column assigned to each of `rowIndices`. */
  colIndices: Int32Array;
}

/**
 * The optimal assignment of a rows × cols cost matrix (row-major): each row to at most one column
 * and each column to at most one row, min(rows, cols) pairs, of least (or, with `maximize`, greatest)
 * total cost. Exact: the shortest-augmenting-path form of the Hungarian / Jonker–Volgenant method
 * (Crouse 2016, the algorithm of scipy.optimize.linear_sum_assignment), in float64, O(n²·m)
 * worst case. Rectangular matrices are allowed; +∞ marks a forbidden pair (an error when no
 * assignment avoids them); NaN and (minimising) −∞ are errors.
 *
 * @param cost rows × cols costs, row-major
 * @example
 * // Hungarian matching of 3 clusters to 3 classes by overlap, maximised:
 * const { rowIndices, colIndices } = linearSumAssignment([5, 1, 0, 0, 4, 2, 1, 0, 6], 3, 3, { maximize: true });
 * // rowIndices = [0, 1, 2], colIndices = [0, 1, 2]
 */
export function linearSumAssignment(
  cost: ArrayLike<number>,
  rows: number,
  cols: number,
  options: LinearSumAssignmentOptions = {},
): LinearSumAssignment {
  const fn = 'linearSumAssignment';
  checkInt(rows, 'rows', fn, 0, 2 ** 26);
  checkInt(cols, 'cols', fn, 0, 2 ** 26);
  if (cost === null || typeof cost !== 'object' || typeof cost.length !== 'number') {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${fn}: cost must be an array of numbers, got ${String(cost)}`,
      {
        input: 'cost',
      },
    );
  }
  if (cost.length !== rows * cols) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `${fn}: cost has ${cost.length} entries, expected rows × cols = ${rows} × ${cols} = ${rows * cols}`,
      { input: 'cost' },
    );
  }
  const maximize = options.maximize ?? false;
  // Work on a float64 copy, transposed when there are more rows than columns, so that every row
  // is assigned (nr ≤ nc), and negated when maximising.
  const transpose = rows > cols;
  const nr = transpose ? cols : rows;
  const nc = transpose ? rows : cols;
  const c = new Float64Array(nr * nc);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const v = Number(cost[i * cols + j]);
      if (Number.isNaN(v) || v === (maximize ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY)) {
        throw new CompressError(
          'NON_FINITE',
          `${fn}: cost[${i}][${j}] is ${v}; expected a number (${maximize ? '−∞' : '+∞'} marks a forbidden pair)`,
          { input: 'cost' },
        );
      }
      c[transpose ? j * nc + i : i * nc + j] = maximize ? -v : v;
    }
  }
  const solved = solveAssignment(c, nr, nc);
  if (solved === null) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${fn}: the cost matrix is infeasible: every assignment uses a forbidden (${maximize ? '−∞' : '+∞'}) pair`,
      { input: 'cost' },
    );
  }
  const { col4row } = solved;
  const rowIndices = new Int32Array(nr);
  const colIndices = new Int32Array(nr);
  if (!transpose) {
    for (let i = 0; i < nr; i++) {
      rowIndices[i] = i;
      colIndices[i] = col4row[i]!;
    }
  } else {
    // Rows of the original are the columns here: sort the pairs by original row.
    const order = Array.from({ length: nr }, (_, i) => i).sort((a, b) => col4row[a]! - col4row[b]!);
    for (let t = 0; t < nr; t++) {
      rowIndices[t] = col4row[order[t]!]!;
      colIndices[t] = order[t]!;
    }
  }
  return { rowIndices, colIndices };
}

/**
 * Minimum-cost assignment of every row of an nr × nc matrix (nr ≤ nc). Square matrices start from
 * Jonker–Volgenant's column reduction (v_j = min_i c_ij, each column given to its cheapest row when
 * that row is free: dual feasible, and most rows assigned for one pass over the matrix); then for
 * every free row, a Dijkstra search over reduced costs c[i][j] − u[i] − v[j] for the shortest
 * augmenting path to a free column, the dual update and the augmentation (Crouse 2016, as scipy).
 * Returns col4row with the LP duals u (rows) and v (columns) — u[i] + v[j] ≤ c[i][j], with equality
 * on the assignment — or null when infeasible.
 */
export function solveAssignment(
  c: Float64Array,
  nr: number,
  nc: number,
): { col4row: Int32Array; u: Float64Array; v: Float64Array } | null {
  const u = new Float64Array(nr);
  const v = new Float64Array(nc);
  const shortest = new Float64Array(nc);
  const path = new Int32Array(nc).fill(-1);
  const col4row = new Int32Array(nr).fill(-1);
  const row4col = new Int32Array(nc).fill(-1);
  const done = new Uint8Array(nc);
  const srList = new Int32Array(nr);
  const scList = new Int32Array(nc);
  const lowestOut = new Float64Array(1);

  // Column reduction: only for square matrices, where every column ends up assigned (with free
  // columns left over, their duals must stay 0, which a positive column minimum would break).
  if (nr === nc && nr > 0) {
    const arg = new Int32Array(nc);
    v.fill(Number.POSITIVE_INFINITY);
    for (let i = 0; i < nr; i++) {
      const ci = i * nc;
      for (let j = 0; j < nc; j++) {
        const x = c[ci + j]!;
        if (x < v[j]!) {
          v[j] = x;
          arg[j] = i;
        }
      }
    }
    for (let j = 0; j < nc; j++) {
      // A column of +∞ only: infeasible, found below by the search; keep its dual finite.
      if (v[j] === Number.POSITIVE_INFINITY) {
        v[j] = 0;
        continue;
      }
      const i = arg[j]!;
      if (col4row[i] === -1) {
        col4row[i] = j;
        row4col[j] = i;
      }
    }
  }

  for (let cur = 0; cur < nr; cur++) {
    if (col4row[cur] !== -1) continue;
    // Shortest augmenting path from row `cur`.
    let minVal = 0;
    let i = cur;
    shortest.fill(Number.POSITIVE_INFINITY);
    let nSR = 0;
    let nSC = 0;
    let sink = -1;
    while (sink === -1) {
      srList[nSR++] = i;
      const j = scanRow(c, i, nc, minVal - u[i]!, v, done, shortest, path, row4col, lowestOut);
      minVal = lowestOut[0]!;
      if (minVal === Number.POSITIVE_INFINITY) return null;
      if (row4col[j] === -1) sink = j;
      else i = row4col[j]!;
      scList[nSC++] = j;
      done[j] = 1;
    }
    // Dual update.
    u[cur]! += minVal;
    for (let t = 0; t < nSR; t++) {
      const r = srList[t]!;
      if (r !== cur) u[r]! += minVal - shortest[col4row[r]!]!;
    }
    for (let t = 0; t < nSC; t++) {
      const j = scList[t]!;
      v[j]! -= minVal - shortest[j]!;
      done[j] = 0;
    }
    // Augment along the path back to `cur`.
    let j = sink;
    for (;;) {
      const r = path[j]!;
      row4col[j] = r;
      const prev = col4row[r]!;
      col4row[r] = j;
      if (r === cur) break;
      j = prev;
    }
  }
  return { col4row, u, v };
}

/**
 * One Dijkstra step: relaxes the columns not yet reached (`done` = 0) through row i, and returns
 * the closest one (ties: the lowest free column, else the lowest column), its distance in out[0].
 * Columns are visited in index order, so the row of costs is read sequentially.
 */
function scanRow(
  c: Float64Array,
  i: number,
  nc: number,
  base: number,
  v: Float64Array,
  done: Uint8Array,
  shortest: Float64Array,
  path: Int32Array,
  row4col: Int32Array,
  out: Float64Array,
): number {
  const ci = i * nc;
  let index = -1;
  let lowest = Number.POSITIVE_INFINITY;
  let lowestFree = false;
  for (let j = 0; j < nc; j++) {
    if (done[j] !== 0) continue;
    let sj = shortest[j]!;
    const r = base + c[ci + j]! - v[j]!;
    if (r < sj) {
      path[j] = i;
      shortest[j] = r;
      sj = r;
    }
    if (sj < lowest) {
      lowest = sj;
      index = j;
      lowestFree = row4col[j] === -1;
    } else if (sj === lowest && !lowestFree && row4col[j] === -1) {
      index = j;
      lowestFree = true;
    }
  }
  out[0] = lowest;
  return index;
}
