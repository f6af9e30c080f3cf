import { expectClose } from '@compress/vitest-config/close';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from './backend.js';
import { SGD, stepLearningRate } from './sgd.js';

/**
 * float32 elementwise updates against float64: per step ~6 roundings (wd·p, + g, 0.9·buf, + d,
 * 0.1·buf, p −) of 6e-8 of the values' scale (measured 2e-8; the former 5e-7 on values of 1–2.2).
 */
const RTOL = 5e-7;

describe('SGD (torch.optim.SGD semantics)', () => {
  beforeAll(async () => {
    await selectBackend({ backend: 'wasm', log: () => {} });
  });

  it('adds weight decay to the gradient, starts the momentum buffer at the first gradient, then p −= lr·buf', () => {
    const p = tf.variable(tf.tensor1d([1, -2]));
    const sgd = new SGD({ lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
    const grads = [tf.tensor1d([0.5, 0.25]), tf.tensor1d([-1, 2])];
    // by hand, as torch: d = g + wd·p; buf = d (step 1), buf = 0.9·buf + d (step 2); p -= 0.1·buf
    let pv = [1, -2];
    let buf: number[] | null = null;
    for (const g of grads) {
      sgd.step([p], { [p.name]: g });
      const gv = Array.from(g.dataSync());
      const d = gv.map((x, i) => x + 0.01 * pv[i]!);
      buf = buf === null ? d : buf.map((b, i) => 0.9 * b + d[i]!);
      pv = pv.map((x, i) => x - 0.1 * buf![i]!);
      expectClose(p.dataSync(), pv, { rtol: RTOL, what: 'parameters' });
      expectClose(sgd.buffers.get(p)!.dataSync(), buf, { rtol: RTOL, what: 'momentum buffer' });
    }
    sgd.dispose();
    tf.dispose([p, ...grads]);
  });

  it('skips variables without a gradient and defaults to the paper (lr 0.01, momentum 0.9, wd 1e-4)', () => {
    const sgd = new SGD();
    expect([sgd.lr, sgd.momentum, sgd.weightDecay]).toEqual([0.01, 0.9, 1e-4]);
    const p = tf.variable(tf.scalar(3));
    sgd.step([p], {});
    expect(p.dataSync()[0]).toBe(3);
    p.dispose();
  });

  it('rejects negative or non-finite hyper-parameters, naming them', () => {
    expect(() => new SGD({ lr: -1 })).toThrow('SGD option lr must be a finite number ≥ 0, found -1');
    expect(() => new SGD({ momentum: Number.NaN })).toThrow(
      'SGD option momentum must be a finite number ≥ 0, found NaN',
    );
  });
});

describe('stepLearningRate', () => {
  it('multiplies by gamma at every milestone passed', () => {
    const schedule = { lr: 0.01, milestones: [90, 120], gamma: 0.2 };
    expect([0, 89, 90, 125].map((e) => stepLearningRate(schedule, e))).toEqual([
      0.01,
      0.01,
      0.01 * 0.2,
      0.01 * 0.2 * 0.2,
    ]);
  });
});
