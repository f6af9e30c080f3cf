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
 * Minimum-cost assignment of every row of an nr × nc matrix (nr ≤ nc): for each row in turn, a
 * Dijkstra search over reduced costs c[i][j] − u[i] − v[j] for the shortest augmenting path to a free
 * column, then the dual update and the augmentation. Returns col4row with the LP duals u (rows) and
 * v (columns) — u[i] + v[j] ≤ c[i][j], with equality on the assignment — or null when infeasible.
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
  const remaining = new Int32Array(nc);
  const srList = new Int32Array(nr);
  const scList = new Int32Array(nc);

  for (let cur = 0; cur < nr; cur++) {
    // Shortest augmenting path from row `cur`.
    let minVal = 0;
    let i = cur;
    // Columns in reverse order, so that with equal costs the lowest free column is reached last and
    // a constant matrix yields the identity (scipy's choice).
    let nRemaining = nc;
    for (let it = 0; it < nc; it++) remaining[it] = nc - it - 1;
    shortest.fill(Number.POSITIVE_INFINITY);
    let nSR = 0;
    let nSC = 0;
    let sink = -1;
    while (sink === -1) {
      let index = -1;
      let lowest = Number.POSITIVE_INFINITY;
      srList[nSR++] = i;
      const ci = i * nc;
      const base = minVal - u[i]!;
      for (let it = 0; it < nRemaining; it++) {
        const j = remaining[it]!;
        const r = base + c[ci + j]! - v[j]!;
        if (r < shortest[j]!) {
          path[j] = i;
          shortest[j] = r;
        }
        const sj = shortest[j]!;
        if (sj < lowest || (sj === lowest && row4col[j] === -1)) {
          lowest = sj;
          index = it;
        }
      }
      minVal = lowest;
      if (minVal === Number.POSITIVE_INFINITY) return null;
      const j = remaining[index]!;
      if (row4col[j] === -1) sink = j;
      else i = row4col[j]!;
      scList[nSC++] = j;
      remaining[index] = remaining[--nRemaining]!;
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
