import { CompressError } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import type { Features } from './compress-loss.js';

/** The B×D values of an input (a FeatureMatrix or a tensor), or an error naming it and its shape. */
export function rows(x: Features, batch: number, dim: number, name: string, step: number): Float32Array {
  if (x instanceof tf.Tensor) {
    if (x.rank !== 2 || x.shape[0] !== batch || x.shape[1] !== dim) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `CompressLoss step ${step}: ${name} must be ${batch}×${dim} (B×D), found shape [${x.shape}]`,
        { input: name },
      );
    }
    return x.dataSync() as Float32Array;
  }
  if (x === null || typeof x !== 'object' || !(x.data instanceof Float32Array)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `CompressLoss step ${step}: ${name} must be a FeatureMatrix or a tensor, found ${x === null ? 'null' : typeof x}`,
      { input: name },
    );
  }
  if (x.rows !== batch || x.dim !== dim || x.data.length !== batch * dim) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `CompressLoss step ${step}: ${name} must be ${batch}×${dim} (B×D), found ${x.rows}×${x.dim} with ${x.data.length} values`,
      { input: name },
    );
  }
  return x.data;
}
