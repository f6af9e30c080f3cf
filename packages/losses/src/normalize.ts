import { l2NormalizeRows } from '@compress/core';

/**
 * x / ‖x‖₂ per row (the paper's Normalize, no epsilon: a zero row gives NaN, which the caller
 * refuses as "a zero row has no direction"), with core's l2NormalizeRows.
 */
export function normalizeRows(x: Float32Array, dim: number): Float32Array {
  return l2NormalizeRows({ rows: x.length / dim, dim, data: x }, undefined, 0).data;
}

/** ‖x‖₂ of every row, in double precision. */
export function rowNorms(x: Float32Array, dim: number): Float64Array {
  const norms = new Float64Array(x.length / dim);
  for (let r = 0, o = 0; o < x.length; r++, o += dim) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += x[o + j]! * x[o + j]!;
    norms[r] = Math.sqrt(s);
  }
  return norms;
}

/** Gradient through x ↦ x/‖x‖: (g − (g·u) u) / ‖x‖ per row, u = x/‖x‖. */
export function normalizeBackward(
  g: Float32Array,
  u: Float32Array,
  norms: Float64Array,
  dim: number,
): Float32Array {
  const out = new Float32Array(g.length);
  for (let r = 0, o = 0; o < g.length; r++, o += dim) {
    let dot = 0;
    for (let j = 0; j < dim; j++) dot += g[o + j]! * u[o + j]!;
    const inv = 1 / norms[r]!;
    for (let j = 0; j < dim; j++) out[o + j] = (g[o + j]! - dot * u[o + j]!) * inv;
  }
  return out;
}
