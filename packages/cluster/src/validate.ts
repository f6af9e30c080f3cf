import { assertFinite, CompressError, checkFeatureMatrix, type FeatureMatrix } from '@compress/core';
import { checkThreads } from './engine/engine.js';

/** Checks a matrix argument: well formed, at least one row, every value finite (naming the bad row). */
export function checkRows(m: FeatureMatrix, fn: string, name: string, minRows = 1): FeatureMatrix {
  const checked = checkFeatureMatrix(m, `${fn}: ${name}`);
  if (checked.rows < minRows) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${fn}: ${name} must have at least ${minRows} row${minRows === 1 ? '' : 's'}, got ${checked.rows}`,
      { input: name },
    );
  }
  assertFinite(checked, `${fn}: ${name}`);
  return checked;
}

/** Checks that two matrices have the same number of columns. */
export function checkSameDim(
  a: FeatureMatrix,
  aName: string,
  b: FeatureMatrix,
  bName: string,
  fn: string,
): void {
  if (a.dim !== b.dim) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `${fn}: ${bName}.dim (${b.dim}) must equal ${aName}.dim (${a.dim})`,
      { input: bName },
    );
  }
}

/** Checks an integer option or argument in [min, max]; `why` explains the upper bound. */
export function checkInt(
  value: number,
  name: string,
  fn: string,
  min: number,
  max: number,
  why = '',
): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${fn}: ${name} must be an integer from ${min} to ${max}${why}, got ${value}`,
      { input: name },
    );
  }
  return value;
}

export function checkBlockBytes(bytes: number, fn: string): number {
  if (!Number.isFinite(bytes) || bytes < 1 << 16) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${fn}: options.blockBytes must be a number of bytes ≥ 65536, got ${bytes}`,
      { input: 'blockBytes' },
    );
  }
  return bytes;
}

export { checkThreads };
