import { CompressError } from './errors.js';
import type { FeatureMatrix } from './types.js';

/** Wraps `data` as a `rows × dim` matrix, checking that the sizes agree. */
export function featureMatrix(
  rows: number,
  dim: number,
  data?: Float32Array,
  name = 'features',
): FeatureMatrix {
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(dim) || dim <= 0) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${name}: rows and dim must be integers (rows ≥ 0, dim ≥ 1), got ${rows}×${dim}`,
      {
        input: name,
      },
    );
  }
  const values = data ?? new Float32Array(rows * dim);
  if (values.length !== rows * dim) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `${name}: expected ${rows}×${dim} = ${rows * dim} values, found ${values.length}`,
      { input: name },
    );
  }
  return { rows, dim, data: values };
}

/** Checks that `m` is a well-formed FeatureMatrix (integer sizes, data length = rows·dim). */
export function checkFeatureMatrix(m: FeatureMatrix, name = 'features'): FeatureMatrix {
  if (m === null || typeof m !== 'object' || !(m.data instanceof Float32Array)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${name}: expected a FeatureMatrix { rows, dim, data: Float32Array }`,
      {
        input: name,
      },
    );
  }
  return featureMatrix(m.rows, m.dim, m.data, name);
}

/**
 * Throws NON_FINITE if any value is NaN or ±Inf, naming the first bad row (and through `rowName`,
 * e.g. the dataset index of that row).
 */
export function assertFinite(
  m: FeatureMatrix,
  name = 'features',
  rowName: (row: number) => string = (row) => `row ${row}`,
): void {
  const { data, dim } = m;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v - v !== 0) {
      const row = Math.floor(i / dim);
      const bad: string[] = [];
      for (let r = row; r < m.rows && bad.length < 5; r++) {
        for (let j = 0; j < dim; j++) {
          const x = data[r * dim + j]!;
          if (x - x !== 0) {
            bad.push(rowName(r));
            break;
          }
        }
      }
      throw new CompressError(
        'NON_FINITE',
        `${name}: found ${Number.isNaN(v) ? 'NaN' : v} at ${rowName(row)}, column ${i % dim} (non-finite rows: ${bad.join(', ')}${bad.length === 5 ? ', …' : ''}); expected finite numbers`,
        { input: name },
      );
    }
  }
}

/** L2-normalises every row (x / max(‖x‖₂, eps)), into `out` (a new matrix by default). */
export function l2NormalizeRows(m: FeatureMatrix, out?: FeatureMatrix, eps = 1e-12): FeatureMatrix {
  const target = out ?? featureMatrix(m.rows, m.dim);
  const { dim } = m;
  const src = m.data;
  const dst = target.data;
  for (let r = 0; r < m.rows; r++) {
    const o = r * dim;
    let s = 0;
    for (let j = 0; j < dim; j++) s += src[o + j]! * src[o + j]!;
    const inv = 1 / Math.max(Math.sqrt(s), eps);
    for (let j = 0; j < dim; j++) dst[o + j] = src[o + j]! * inv;
  }
  return target;
}
