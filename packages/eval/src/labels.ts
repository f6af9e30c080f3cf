import { assertFinite, CompressError, checkFeatureMatrix, type FeatureMatrix } from '@compress/core';

/** Labels as an Int32Array, checked against the feature rows and the class count. */
export function checkLabels(
  labels: ArrayLike<number>,
  features: FeatureMatrix,
  name: string,
  numClasses?: number,
): Int32Array {
  checkFeatureMatrix(features, `${name} features`);
  if (labels.length !== features.rows) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `${name}: ${features.rows} feature rows but ${labels.length} labels; expected one label per row`,
      { input: `${name} labels` },
    );
  }
  const out = Int32Array.from(labels);
  for (let i = 0; i < out.length; i++) {
    const l = out[i]!;
    if (l < 0 || !Number.isInteger(labels[i]) || (numClasses !== undefined && l >= numClasses)) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `${name} labels: row ${i} has label ${labels[i]}, expected an integer in [0, ${numClasses ?? '∞'})`,
        { input: `${name} labels` },
      );
    }
  }
  assertFinite(features, `${name} features`);
  return out;
}

/** Number of classes: 1 + the largest label of either split (or the given count). */
export function countClasses(...labelSets: Int32Array[]): number {
  let max = -1;
  for (const set of labelSets) for (const l of set) if (l > max) max = l;
  return max + 1;
}

/** Throws if a class in [0, numClasses) has no train sample: its accuracy could not be learned. */
export function assertEveryClassPresent(trainLabels: Int32Array, numClasses: number, what: string): void {
  const seen = new Uint8Array(numClasses);
  for (const l of trainLabels) seen[l] = 1;
  const missing: number[] = [];
  seen.forEach((s, c) => {
    if (!s) missing.push(c);
  });
  if (missing.length > 0) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${what}: class${missing.length > 1 ? 'es' : ''} ${missing.join(', ')} ha${missing.length > 1 ? 've' : 's'} no train sample; every class in 0…${numClasses - 1} needs at least one`,
      { input: 'trainLabels' },
    );
  }
}
