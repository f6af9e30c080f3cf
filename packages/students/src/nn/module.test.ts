import { Rng } from '@compress/core';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../backend.js';
import { addRelu, BatchNorm2d, ConvBN } from './module.js';

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** BN train forward, dx, dγ, dβ on the active backend for L = Σ y ⊙ g. */
function bnRun(
  x: Float32Array,
  g: Float32Array,
  shape: number[],
  gamma: Float32Array,
  beta: Float32Array,
  activation: 'linear' | 'relu' | 'relu6' = 'linear',
) {
  const c = shape[shape.length - 1]!;
  const bn = new BatchNorm2d(c);
  bn.weight.assign(tf.tensor1d(gamma));
  bn.bias.assign(tf.tensor1d(beta));
  const xt = tf.tensor(x, shape);
  const gt = tf.tensor(g, shape);
  const y = tf.tidy(() => bn.forwardAct(xt, activation));
  const yv = y.dataSync().slice();
  // the forward above updated the running stats once; the gradient pass below updates them again
  const rm = bn.runningMean.dataSync().slice();
  const rv = bn.runningVar.dataSync().slice();
  const { grads } = tf.variableGrads(
    () => tf.sum(tf.mul(bn.forward(xt), gt)) as tf.Scalar,
    [bn.weight, bn.bias],
  );
  const dx = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(bn.forwardAct(a, activation), gt)))(xt);
  const out = {
    y: yv,
    rm,
    rv,
    dGamma: grads[bn.weight.name]!.dataSync().slice(),
    dBeta: grads[bn.bias.name]!.dataSync().slice(),
    dx: dx.dataSync().slice(),
  };
  tf.dispose([xt, gt, y, dx, ...Object.values(grads)]);
  bn.dispose();
  return out;
}

describe('BatchNorm2d', () => {
  beforeAll(async () => {
    await selectBackend({ backend: 'wasm', log: () => {} });
  });

  const rng = new Rng(3);
  const shape = [3, 5, 4, 6];
  const n = 3 * 5 * 4;
  const x = rng.fillNormal(new Float32Array(n * 6), 2, 3);
  const g = rng.fillNormal(new Float32Array(n * 6));
  const gamma = rng.fillUniform(new Float32Array(6), 0.5, 1.5);
  const beta = rng.fillNormal(new Float32Array(6));

  it('train mode matches the formula and PyTorch running-stat updates (momentum 0.1, unbiased var)', () => {
    const r = bnRun(x, g, shape, gamma, beta);
    for (let k = 0; k < 6; k++) {
      let mean = 0;
      for (let i = 0; i < n; i++) mean += x[i * 6 + k]!;
      mean /= n;
      let v = 0;
      for (let i = 0; i < n; i++) v += (x[i * 6 + k]! - mean) ** 2;
      const biased = v / n;
      for (let i = 0; i < n; i++) {
        const want = ((x[i * 6 + k]! - mean) / Math.sqrt(biased + 1e-5)) * gamma[k]! + beta[k]!;
        expect(Math.abs(r.y[i * 6 + k]! - want)).toBeLessThan(1e-5);
      }
      expect(r.rm[k]).toBeCloseTo(0.1 * mean, 5);
      expect(r.rv[k]).toBeCloseTo(0.9 + (0.1 * v) / (n - 1), 4);
    }
  });

  for (const activation of ['linear', 'relu', 'relu6'] as const) {
    it(`the fused wasm kernels agree with the op-by-op version on cpu (${activation}; forward and gradients)`, async () => {
      const wasm = bnRun(x, g, shape, gamma, beta, activation);
      await tf.setBackend('cpu');
      const cpu = bnRun(x, g, shape, gamma, beta, activation);
      await tf.setBackend('wasm');
      expect(maxAbs(wasm.y, cpu.y)).toBeLessThan(1e-5);
      expect(maxAbs(wasm.dx, cpu.dx)).toBeLessThan(1e-5);
      expect(maxAbs(wasm.dGamma, cpu.dGamma)).toBeLessThan(1e-4);
      expect(maxAbs(wasm.dBeta, cpu.dBeta)).toBeLessThan(1e-4);
      expect(maxAbs(wasm.rv, cpu.rv)).toBeLessThan(1e-5);
    });
  }

  it('eval mode uses the running statistics', () => {
    const bn = new BatchNorm2d(2);
    bn.runningMean.assign(tf.tensor1d([1, -1]));
    bn.runningVar.assign(tf.tensor1d([4, 9]));
    bn.eval();
    const y = tf.tidy(() => bn.forward(tf.tensor4d([3, 2], [1, 1, 1, 2])));
    const v = y.dataSync();
    expect(v[0]).toBeCloseTo(2 / Math.sqrt(4 + 1e-5), 5);
    expect(v[1]).toBeCloseTo(3 / Math.sqrt(9 + 1e-5), 5);
    y.dispose();
    bn.dispose();
  });

  it('rejects a train-mode batch with one value per channel, naming the shape', () => {
    const bn = new BatchNorm2d(2);
    expect(() => tf.tidy(() => bn.forward(tf.zeros([1, 1, 1, 2])))).toThrow(
      'BatchNorm2d in train mode needs more than 1 value per channel, found input shape [1, 1, 1, 2]',
    );
    bn.dispose();
  });
});

describe('ConvBN', () => {
  beforeAll(async () => {
    await selectBackend({ backend: 'wasm', log: () => {} });
  });

  for (const depthwise of [false, true]) {
    it(`folds BatchNorm into a fused ${depthwise ? 'depthwise ' : ''}convolution in eval mode`, () => {
      const rng = new Rng(11);
      const c = 4;
      const m = new ConvBN(
        c,
        c,
        { kernel: 3, stride: 2, padding: 1, groups: depthwise ? c : 1 },
        'relu6',
        rng,
      );
      m.bn.runningMean.assign(tf.tensor1d(rng.fillNormal(new Float32Array(c))));
      m.bn.runningVar.assign(tf.tensor1d(rng.fillUniform(new Float32Array(c), 0.5, 2)));
      m.bn.weight.assign(tf.tensor1d(rng.fillNormal(new Float32Array(c))));
      m.eval();
      const x = tf.tensor4d(rng.fillNormal(new Float32Array(2 * 7 * 7 * c)), [2, 7, 7, c]);
      const fused = tf.tidy(() => m.forward(x));
      const plain = tf.tidy(() => tf.relu6(m.bn.forward(m.conv.forward(x))));
      expect(fused.shape).toEqual([2, 4, 4, c]);
      expect(maxAbs(fused.dataSync(), plain.dataSync())).toBeLessThan(1e-5);
      tf.dispose([x, fused, plain]);
      m.dispose();
    });
  }
});

describe('addRelu', () => {
  beforeAll(async () => {
    await selectBackend({ backend: 'wasm', log: () => {} });
  });

  it('is relu(a + b) with the same gradients, keeping only its output', () => {
    const a = tf.tensor1d([1, -2, 0.5, -0.25]);
    const b = tf.tensor1d([-3, 1, 1, 0.5]);
    const g = tf.tensor1d([1, 2, 3, 4]);
    const [da, db] = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.mul(addRelu(p, q), g)))([a, b]);
    const [ra, rb] = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.mul(tf.relu(tf.add(p, q)), g)))([
      a,
      b,
    ]);
    expect(Array.from(addRelu(a, b).dataSync())).toEqual([0, 0, 1.5, 0.25]);
    expect(Array.from(da!.dataSync())).toEqual(Array.from(ra!.dataSync()));
    expect(Array.from(db!.dataSync())).toEqual(Array.from(rb!.dataSync()));
    tf.dispose([a, b, g, da!, db!, ra!, rb!]);
  });
});
