import { expectClose } from '@compress/vitest-config/close';
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
    key.model.namedParameters().forEach(([name, v], i) => {
      const n = Math.min(v.size, 50);
      const got = v.dataSync().subarray(0, n);
      const st = s[i]![1].dataSync().subarray(0, n);
      const was = before[i]!.subarray(0, n);
      const want = Array.from(was, (w, j) => 0.9 * w + 0.1 * st[j]!);
      // float32 m·key + (1 − m)·student (m and 1 − m rounded too): a few roundings (6e-8) of the
      // larger of the two, measured ≤ 1e-7 of it (the former 5e-7 on weights of 0.01–1)
      const scale = Math.max(...Array.from(was, Math.abs), ...Array.from(st, Math.abs));
      expectClose(got, want, { rtol: 5e-7, scale, what: name });
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
