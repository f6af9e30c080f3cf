import { randomImageBatch } from '@compress/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from './backend.js';
import { createStudent } from './models/registry.js';
import { SGD } from './sgd.js';
import { preprocess, trainStep } from './train.js';

describe('trainStep', () => {
  beforeAll(async () => {
    await selectBackend({ backend: 'wasm', log: () => {} });
  });

  it('trains a student and an extra head on wasm without leaking tensors', () => {
    const student = createStudent('mobilenetv2-small', { seed: 1, inputSize: 16 });
    // an extra trainable variable, like the one-queue variant's linear head: Ds → 8
    const head = tf.variable(
      tf.mul(tf.randomNormal([student.spec.featureDim, 8], 0, 1, 'float32', 1), 0.01) as tf.Tensor2D,
    );
    const target = tf.randomNormal([4, 8], 0, 1, 'float32', 2);
    const x = preprocess(student, randomImageBatch(4, [16, 16, 1], 3));
    // a small lr: at 0.05 this BatchNorm student's loss oscillates from step to step, and where it
    // ends after 5 steps depends on float rounding (training from the initialisation is
    // ill-conditioned, see @compress/train's engine tests)
    const optimizer = new SGD({ lr: 0.01 });
    const loss = () => tf.mean(tf.square(tf.sub(tf.matMul(student.features(x), head), target))) as tf.Scalar;
    const headBefore = head.dataSync().slice();
    const losses = [trainStep(student, loss, { optimizer, extraVariables: [head] }).loss];
    const tensors = tf.memory().numTensors;
    const bytes = tf.memory().numBytes;
    for (let i = 0; i < 4; i++)
      losses.push(trainStep(student, loss, { optimizer, extraVariables: [head] }).loss);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(tf.memory().numBytes).toBe(bytes);
    expect(losses.at(-1)!).toBeLessThan(losses[0]!);
    expect(Array.from(head.dataSync())).not.toEqual(Array.from(headBefore));
    // momentum buffers exist for every student parameter and for the head
    expect(optimizer.buffers.size).toBe(student.trainableVariables().length + 1);
    optimizer.dispose();
    tf.dispose([head, target, x]);
    student.dispose();
  });

  it('refuses a non-finite loss and a batch of the wrong shape', () => {
    const student = createStudent('alexnet-small', { seed: 1 });
    const optimizer = new SGD();
    const x = preprocess(student, randomImageBatch(2, [28, 28, 1]));
    expect(() =>
      trainStep(student, () => tf.div(tf.sum(student.features(x)), 0) as tf.Scalar, { optimizer }),
    ).toThrow('training loss is Infinity; lower the learning rate or check the inputs');
    expect(() => preprocess(student, randomImageBatch(2, [32, 32, 3]))).toThrow(
      'student alexnet-small takes 28×28×1 images, found 32×32×3',
    );
    x.dispose();
    optimizer.dispose();
    student.dispose();
  });
});
