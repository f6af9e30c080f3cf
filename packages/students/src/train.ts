import { CompressError, type ImageBatch } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import type { Student } from './models/student.js';
import type { Module } from './nn/module.js';
import type { SGD } from './sgd.js';

export interface TrainStepOptions {
  optimizer: SGD;
  /**
   * Trainable variables outside the model that the loss uses and that the same optimizer updates
   * (e.g. the one-queue variant's linear head). @default []
   */
  extraVariables?: readonly tf.Variable[];
}

export interface TrainStepResult {
  /** The loss before the update. */
  loss: number;
}

/**
 * One training step: puts `model` in train mode, runs `loss()` (which calls the model's forward)
 * on the gradient tape, takes gradients for the model's trainable variables and `extraVariables`,
 * applies the optimizer, and frees every intermediate tensor. BatchNorm running statistics are
 * updated by the forward, as in PyTorch.
 */
export function trainStep(model: Module, loss: () => tf.Scalar, options: TrainStepOptions): TrainStepResult {
  model.train();
  const variables = [...model.trainableVariables(), ...(options.extraVariables ?? [])];
  const { value, grads } = tf.variableGrads(loss, variables);
  try {
    const lossValue = (value.dataSync() as Float32Array)[0] as number;
    if (!Number.isFinite(lossValue)) {
      throw new CompressError(
        'NON_FINITE',
        `training loss is ${lossValue}; lower the learning rate or check the inputs`,
        {
          input: 'loss',
        },
      );
    }
    options.optimizer.step(variables, grads);
    return { loss: lossValue };
  } finally {
    tf.dispose(value);
    tf.dispose(grads);
  }
}

/**
 * An ImageBatch (NHWC, values in [0, 1]) as the student's normalised input tensor
 * (x − mean) / std, after checking its shape against the student.
 */
export function preprocess(student: Student, batch: ImageBatch): tf.Tensor4D {
  const [b, h, w, c] = batch.shape;
  const { inputSize, channels, mean, std } = student.spec;
  if (h !== inputSize || w !== inputSize || c !== channels) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `student ${student.spec.name} takes ${inputSize}×${inputSize}×${channels} images, found ${h}×${w}×${c}`,
      { input: 'batch.shape' },
    );
  }
  return tf.tidy(() => {
    const x = tf.tensor4d(batch.images, [b, h, w, c]);
    return tf.div(tf.sub(x, tf.tensor1d(mean)), tf.tensor1d(std)) as tf.Tensor4D;
  });
}
