import { readFileSync } from 'node:fs';
import { Rng } from '@compress/core';
import { goldenPath } from '@compress/vitest-config';
import { describe, expect, it } from 'vitest';
import { linearSumAssignment } from './index.js';
import { solveAssignment } from './lsa.js';

interface GoldenProblem {
  cost: number[][];
  maximize: boolean;
  row_ind: number[];
  col_ind: number[];
  total: number;
}

function total(
  cost: ArrayLike<number>,
  cols: number,
  r: { rowIndices: Int32Array; colIndices: Int32Array },
): number {
  let s = 0;
  for (let t = 0; t < r.rowIndices.length; t++) s += cost[r.rowIndices[t]! * cols + r.colIndices[t]!]!;
  return s;
}

/** The best total over every assignment of min(rows, cols) pairs, by enumeration. */
function bruteForce(cost: number[], rows: number, cols: number, maximize: boolean): number {
  const sign = maximize ? -1 : 1;
  let best = Number.POSITIVE_INFINITY;
  const used = new Uint8Array(Math.max(rows, cols));
  const byRow = rows <= cols;
  const n = byRow ? rows : cols;
  const m = byRow ? cols : rows;
  const at = (a: number, b: number) => (byRow ? cost[a * cols + b]! : cost[b * cols + a]!);
  const rec = (a: number, acc: number) => {
    if (a === n) {
      best = Math.min(best, sign * acc);
      return;
    }
    for (let b = 0; b < m; b++) {
      if (used[b]) continue;
      used[b] = 1;
      rec(a + 1, acc + at(a, b));
      used[b] = 0;
    }
  };
  rec(0, 0);
  return sign * best;
}

function checkShape(r: { rowIndices: Int32Array; colIndices: Int32Array }, rows: number, cols: number) {
  expect(r.rowIndices.length).toBe(Math.min(rows, cols));
  expect(r.colIndices.length).toBe(Math.min(rows, cols));
  for (let t = 1; t < r.rowIndices.length; t++) expect(r.rowIndices[t]).toBeGreaterThan(r.rowIndices[t - 1]!);
  expect(new Set(r.colIndices).size).toBe(r.colIndices.length);
  for (const j of r.colIndices) expect(j >= 0 && j < cols).toBe(true);
  for (const i of r.rowIndices) expect(i >= 0 && i < rows).toBe(true);
}

/**
 * An optimality certificate for a square minimisation independent of the solver: potentials d from
 * Bellman–Ford on the exchange graph (edge i′ → i of weight c[i][σ(i′)] − c[i′][σ(i′)]: row i takes
 * row i′'s column); they exist iff no improving cyclic exchange does. Then u_i = d_i,
 * v_σ(i) = c[i][σ(i)] − d_i is LP-dual feasible (u_i + v_j ≤ c_ij for all i, j) and complementary
 * slack on σ, so Σu + Σv = cost(σ) proves σ optimal.
 */
function certify(c: Float64Array, n: number, sigma: Int32Array, tol: number): void {
  const dist = new Float64Array(n);
  let rounds = 0;
  for (let changed = true; changed; rounds++) {
    expect(rounds).toBeLessThan(n + 1); // more rounds would mean a negative cycle: not optimal
    changed = false;
    for (let ip = 0; ip < n; ip++) {
      const base = dist[ip]! - c[ip * n + sigma[ip]!]!;
      const col = sigma[ip]!;
      for (let i = 0; i < n; i++) {
        const cand = base + c[i * n + col]!;
        if (cand < dist[i]! - 1e-12) {
          dist[i] = cand;
          changed = true;
        }
      }
    }
  }
  const u = dist;
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) v[sigma[i]!] = c[i * n + sigma[i]!]! - u[i]!;
  let primal = 0;
  let dual = 0;
  for (let i = 0; i < n; i++) {
    primal += c[i * n + sigma[i]!]!;
    dual += u[i]! + v[i]!;
    for (let j = 0; j < n; j++) expect(u[i]! + v[j]!).toBeLessThanOrEqual(c[i * n + j]! + tol);
    expect(Math.abs(u[i]! + v[sigma[i]!]! - c[i * n + sigma[i]!]!)).toBeLessThanOrEqual(tol);
  }
  expect(Math.abs(primal - dual)).toBeLessThanOrEqual(tol * n);
}

describe('linearSumAssignment', () => {
  const golden = JSON.parse(readFileSync(goldenPath('eval.json'), 'utf8'));

  it('meets the golden assignment problems (eval.json, scipy)', () => {
    const problems = golden.linear_sum_assignment as GoldenProblem[];
    expect(problems.length).toBeGreaterThan(0);
    for (const p of problems) {
      const rows = p.cost.length;
      const cols = p.cost[0]!.length;
      const r = linearSumAssignment(p.cost.flat(), rows, cols, { maximize: p.maximize });
      expect(Array.from(r.rowIndices)).toEqual(p.row_ind);
      expect(Array.from(r.colIndices)).toEqual(p.col_ind);
      expect(total(p.cost.flat(), cols, r)).toBeCloseTo(p.total, 9);
    }
  });

  it("gives the paper's cluster alignment mapping (maximised precision), not the count-based one", () => {
    const ca = golden.cluster_alignment;
    const score = ca.score as number[][];
    const r = linearSumAssignment(score.flat(), 5, 5, { maximize: true });
    expect(Array.from(r.colIndices)).toEqual(ca.mapping);
    const byCounts = linearSumAssignment((ca.counts as number[][]).flat(), 5, 5, { maximize: true });
    expect(Array.from(byCounts.colIndices)).toEqual(ca.by_counts.mapping);
  });

  it('equals brute force on small square and rectangular matrices, minimising and maximising', () => {
    const rng = new Rng(1);
    for (let trial = 0; trial < 300; trial++) {
      const rows = 1 + rng.int(6);
      const cols = 1 + rng.int(6);
      const integer = trial % 2 === 0; // integer costs: many ties between optimal assignments
      const cost = Array.from({ length: rows * cols }, () => (integer ? rng.int(5) : rng.uniform(-3, 3)));
      for (const maximize of [false, true]) {
        const r = linearSumAssignment(Float64Array.from(cost), rows, cols, { maximize });
        checkShape(r, rows, cols);
        expect(total(cost, cols, r)).toBeCloseTo(bruteForce(cost, rows, cols, maximize), 9);
      }
    }
  });

  it('returns the identity for a constant matrix, as scipy does', () => {
    const r = linearSumAssignment(new Float64Array(16).fill(2), 4, 4);
    expect(Array.from(r.colIndices)).toEqual([0, 1, 2, 3]);
  });

  it('avoids forbidden (+∞) pairs and reports an infeasible matrix', () => {
    const I = Number.POSITIVE_INFINITY;
    const r = linearSumAssignment([I, 1, 2, 3, I, I, 4, 5, I], 3, 3);
    expect(Array.from(r.colIndices)).toEqual([2, 0, 1]);
    expect(() => linearSumAssignment([I, I, 1, 2], 2, 2)).toThrow(
      'linearSumAssignment: the cost matrix is infeasible: every assignment uses a forbidden (+∞) pair',
    );
  });

  it('is optimal on a 1000 × 1000 random matrix (LP dual certificate)', () => {
    const n = 1000;
    const rng = new Rng(2);
    const c = new Float64Array(n * n);
    rng.fillUniform(c);
    const r = linearSumAssignment(c, n, n);
    checkShape(r, n, n);
    // The solver's duals, checked here: u_i + v_j ≤ c_ij everywhere (dual feasible) and = c_ij on the
    // assignment (complementary slackness). By LP duality that proves the assignment optimal,
    // however the duals were found; and it must be the assignment the public function returned.
    const solved = solveAssignment(c, n, n)!;
    expect(solved.col4row).toEqual(r.colIndices);
    const { u, v } = solved;
    let worst = 0;
    let slack = 0;
    let primal = 0;
    let dual = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) worst = Math.max(worst, u[i]! + v[j]! - c[i * n + j]!);
      const j = r.colIndices[i]!;
      slack = Math.max(slack, Math.abs(u[i]! + v[j]! - c[i * n + j]!));
      primal += c[i * n + j]!;
      dual += u[i]! + v[i]!;
    }
    expect(worst).toBeLessThanOrEqual(1e-12);
    expect(slack).toBeLessThanOrEqual(1e-12);
    expect(Math.abs(primal - dual)).toBeLessThanOrEqual(1e-9);
  });

  it('is optimal on rectangular and maximised random matrices (certificate on the completed square)', () => {
    const rng = new Rng(3);
    for (const [rows, cols] of [
      [40, 90],
      [90, 40],
    ] as const) {
      const cost = rng.fillUniform(new Float64Array(rows * cols), 0, 10);
      const r = linearSumAssignment(cost, rows, cols, { maximize: true });
      checkShape(r, rows, cols);
      // Square completion: pad with zero rows/columns, minimise −cost; the assignment extended by
      // matching the padding to the unused lines must be optimal there.
      const n = Math.max(rows, cols);
      const sq = new Float64Array(n * n);
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) sq[i * n + j] = -cost[i * cols + j]!;
      const sigma = new Int32Array(n).fill(-1);
      for (let t = 0; t < r.rowIndices.length; t++) sigma[r.rowIndices[t]!] = r.colIndices[t]!;
      const freeCols = [...Array(n).keys()].filter((j) => !r.colIndices.includes(j));
      for (let i = 0; i < n; i++) if (sigma[i] === -1) sigma[i] = freeCols.shift()!;
      certify(sq, n, sigma, 1e-9);
    }
  });

  it('rejects bad input with messages naming it', () => {
    expect(() => linearSumAssignment([1, 2, 3], 2, 2)).toThrow(
      'linearSumAssignment: cost has 3 entries, expected rows × cols = 2 × 2 = 4',
    );
    expect(() => linearSumAssignment([1, Number.NaN, 3, 4], 2, 2)).toThrow(
      'linearSumAssignment: cost[0][1] is NaN; expected a number (+∞ marks a forbidden pair)',
    );
    expect(() => linearSumAssignment([1, 2, Number.NEGATIVE_INFINITY, 4], 2, 2)).toThrow(
      'linearSumAssignment: cost[1][0] is -Infinity',
    );
    expect(() => linearSumAssignment([1, 2, 3, 4], 2.5, 2)).toThrow(
      'linearSumAssignment: rows must be an integer',
    );
    expect(linearSumAssignment([], 0, 3).rowIndices.length).toBe(0);
  });
});
