import { Rng } from '@compress/core';
import '@tensorflow/tfjs-backend-cpu';
import { expectClose } from '@compress/vitest-config/close';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../backend.js';
import { addRelu } from './activation.js';
import { BatchNorm2d, ConvBN } from './batchnorm.js';

/** max |x| over `a`. */
const maxAbsOf = (a: ArrayLike<number>): number => Math.max(...Array.from(a, Math.abs));

/**
 * float32 BatchNorm (sums over 60 values, a square root, a few products and sums per entry) against
 * float64 or another float32 order of the same sums: measured ≤ 3e-7 of the values' scale; 5e-6 is
 * ~80 float32 roundings (6e-8) of it, as the former 1e-5 on values of 1–5.
 */
const RTOL = 5e-6;
/** The running variance against float64: as the former 5e-5 on ≈ 2 (measured 6e-8). */
const RUNNING_VAR_RTOL = 2e-5;

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
      const col = Float64Array.from({ length: n }, (_, i) => x[i * 6 + k]!);
      const got = Float64Array.from({ length: n }, (_, i) => r.y[i * 6 + k]!);
      const want = col.map((xi) => ((xi - mean) / Math.sqrt(biased + 1e-5)) * gamma[k]! + beta[k]!);
      expectClose(got, want, { rtol: RTOL, what: `y[…, ${k}]` });
      // a mean may be near 0: its rounding is a fraction of the values averaged
      expectClose(r.rm[k]!, 0.1 * mean, {
        rtol: RTOL,
        scale: 0.1 * maxAbsOf(col),
        what: `running mean ${k}`,
      });
      expectClose(r.rv[k]!, 0.9 + (0.1 * v) / (n - 1), { rtol: RUNNING_VAR_RTOL, what: `running var ${k}` });
    }
  });

  for (const activation of ['linear', 'relu', 'relu6'] as const) {
    it(`the fused wasm kernels agree with the op-by-op version on cpu (${activation}; forward and gradients)`, async () => {
      const wasm = bnRun(x, g, shape, gamma, beta, activation);
      await tf.setBackend('cpu');
      const cpu = bnRun(x, g, shape, gamma, beta, activation);
      await tf.setBackend('wasm');
      expectClose(wasm.y, cpu.y, { rtol: RTOL, what: 'y' });
      expectClose(wasm.dx, cpu.dx, { rtol: RTOL, what: 'dx' });
      expectClose(wasm.dGamma, cpu.dGamma, { rtol: RTOL, what: 'dγ' });
      expectClose(wasm.dBeta, cpu.dBeta, { rtol: RTOL, what: 'dβ' });
      expectClose(wasm.rv, cpu.rv, { rtol: RTOL, what: 'running var' });
    });
  }

  it('eval mode uses the running statistics', () => {
    const bn = new BatchNorm2d(2);
    bn.runningMean.assign(tf.tensor1d([1, -1]));
    bn.runningVar.assign(tf.tensor1d([4, 9]));
    bn.eval();
    const y = tf.tidy(() => bn.forward(tf.tensor4d([3, 2], [1, 1, 1, 2])));
    const v = y.dataSync();
    // float32 (x − mean)·γ/√(var + ε): a few roundings of values ≈ 1
    expectClose(v, [2 / Math.sqrt(4 + 1e-5), 3 / Math.sqrt(9 + 1e-5)], { rtol: RTOL });
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
      // the same float32 sums with BatchNorm folded into the weights: reordered roundings
      expectClose(fused.dataSync(), plain.dataSync(), { rtol: RTOL, what: 'fused' });
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
