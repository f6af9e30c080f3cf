import { type FeatureMatrix, featureMatrix, type ImageBatch } from '@compress/core';
import type { FeatureExtractor } from '@compress/eval';
import { preprocess, type Student } from '@compress/students';
import * as tf from '@tensorflow/tfjs-core';

/** A frozen student as a feature extractor (eval mode: running BatchNorm statistics). */
export function studentExtractor(student: Student): FeatureExtractor {
  return {
    dim: student.spec.featureDim,
    async embed(batch: ImageBatch): Promise<FeatureMatrix> {
      student.eval();
      const y = tf.tidy(() => student.features(preprocess(student, batch)));
      const data = (await y.data()) as Float32Array;
      y.dispose();
      return featureMatrix(batch.shape[0], student.spec.featureDim, data);
    },
  };
}
