import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from './backend.js';
import { KeyEncoder } from './ema.js';
import { createStudent } from './models/registry.js';
import { SGD } from './sgd.js';
import { trainStep } from './train.js';

describe('KeyEncoder', () => {
  beforeAll(async () => {
    await selectBackend({ backend: 'wasm', log: () => {} });
  });

  it('starts as an exact copy, then follows key = m·key + (1 − m)·student', () => {
    const student = createStudent('mobilenetv2-small', { seed: 4, inputSize: 16 });
    const key = KeyEncoder.of(student, 0.9);
    const sd = student.stateDict();
    key.model.stateDict().forEach(([name, v], i) => {
      expect(name).toBe(sd[i]![0]);
      expect(Array.from(v.dataSync())).toEqual(Array.from(sd[i]![1].dataSync()));
    });
    const x = tf.randomNormal([4, 16, 16, 1], 0, 1, 'float32', 9) as tf.Tensor4D;
    const before = key.model.namedParameters().map(([, v]) => v.dataSync().slice());
    trainStep(student, () => tf.mean(tf.square(student.features(x))) as tf.Scalar, {
      optimizer: new SGD({ lr: 0.1 }),
    });
    key.update(student);
    const s = student.namedParameters();
    key.model.namedParameters().forEach(([, v], i) => {
      const got = v.dataSync();
      const st = s[i]![1].dataSync();
      const was = before[i]!;
      for (let j = 0; j < Math.min(got.length, 50); j++)
        expect(got[j]).toBeCloseTo(0.9 * was[j]! + 0.1 * st[j]!, 6);
    });
    // the key's BatchNorm statistics come from its own train-mode forward, not from the student
    const rmBefore = key.model.namedBuffers()[0]![1].dataSync().slice();
    const f = key.features(x);
    expect(f.shape).toEqual([4, 1280]);
    expect(Array.from(key.model.namedBuffers()[0]![1].dataSync())).not.toEqual(Array.from(rmBefore));
    tf.dispose([x, f]);
    key.dispose();
    student.dispose();
  });

  it('rejects a momentum outside [0, 1]', () => {
    const student = createStudent('alexnet-small', {}, { initialize: false });
    expect(() => KeyEncoder.of(student, 1.5)).toThrow('key encoder momentum must be in [0, 1], found 1.5');
    student.dispose();
  });
});
