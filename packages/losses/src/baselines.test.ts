import { Rng } from '@compress/core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { expectClose } from '@compress/vitest-config/close';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { ClusterClassifier, RegBnLoss, RegLoss } from './baselines.js';

function normal(rows: number, dim: number, seed: number): tf.Tensor2D {
  return tf.tensor2d(new Rng(seed).fillNormal(new Float32Array(rows * dim)), [rows, dim]);
}
const arr = (t: tf.Tensor) => Array.from(t.dataSync());

/** float32 results against their float64 definitions: a few float32 roundings of their scale. */
const RTOL = 1e-5;
/** Of |f|: see checkGrad. */
const FD_FLOOR = 1e-3;

/**
 * Central finite differences of f with respect to variable v, at a few entries. A difference with
 * step 1e-2 is off by O(step²) (the 2e-2 of |fd|) and by the float32 rounding of f over the step,
 * which scales with |f|: the floor is a fraction of |f| (a gradient that is 0 by design, as that of
 * a bias BatchNorm removes, has no scale of its own).
 */
function checkGrad(f: () => tf.Scalar, v: tf.Variable, analytic: ArrayLike<number>, entries: number[]): void {
  const v0 = v.dataSync().slice();
  const eps = 1e-2;
  const y0 = f();
  const scale = Math.abs(y0.dataSync()[0]!);
  y0.dispose();
  for (const i of entries) {
    const at = (d: number) => {
      const x = v0.slice();
      x[i]! += d;
      v.assign(tf.tensor(x, v.shape));
      const y = f();
      const r = y.dataSync()[0]!;
      y.dispose();
      return r;
    };
    const fd = (at(eps) - at(-eps)) / (2 * eps);
    expect(
      Math.abs(fd - analytic[i]!),
      `entry ${i}: finite difference ${fd}, gradient ${analytic[i]}`,
    ).toBeLessThan(FD_FLOOR * scale + 2e-2 * Math.abs(fd));
  }
  v.assign(tf.tensor(v0, v.shape));
}

describe.each(['cpu', 'wasm'] as const)('baselines on %s', (backend) => {
  it('Reg: MSE between the projection and the L2-normalised teacher feature, with its gradients', async () => {
    await tf.setBackend(backend);
    const reg = new RegLoss({ teacherDim: 5, studentDim: 3, seed: 1 });
    const t = normal(4, 5, 1);
    const s = tf.variable(normal(4, 3, 2));
    // reference in float64
    const W = arr(reg.projection.weight);
    const b = arr(reg.projection.bias);
    const tv = arr(t);
    const sv = arr(s);
    let want = 0;
    for (let i = 0; i < 4; i++) {
      const n = Math.hypot(...tv.slice(i * 5, i * 5 + 5));
      for (let j = 0; j < 5; j++) {
        let y = b[j]!;
        for (let k = 0; k < 3; k++) y += sv[i * 3 + k]! * W[k * 5 + j]!;
        want += (y - tv[i * 5 + j]! / n) ** 2;
      }
    }
    want /= 20;
    const vars = [s, ...reg.trainableVariables];
    const { value, grads } = tf.variableGrads(() => reg.forward(t, s), vars);
    expectClose(value.dataSync()[0]!, want, { rtol: RTOL });
    expect(reg.trainableVariables).toHaveLength(2);
    for (const v of vars)
      checkGrad(
        () => reg.forward(t, s),
        v,
        grads[v.name]!.dataSync(),
        [0, 2, 5, 7].filter((i) => i < v.size),
      );
    reg.dispose();
  });

  it('Reg-BN: batch-normalised projection in training, running statistics (unbiased, momentum 0.1) in evaluation', async () => {
    await tf.setBackend(backend);
    const reg = new RegBnLoss({ teacherDim: 4, studentDim: 3, seed: 2 });
    expect(reg.batchNorm).toBe(true);
    const t = normal(6, 4, 3);
    const s = tf.variable(normal(6, 3, 4));
    const y = arr(reg.projection.apply(s));
    const z = reg.project(s, true); // training: batch statistics
    const zv = arr(z);
    for (let j = 0; j < 4; j++) {
      const col = [0, 1, 2, 3, 4, 5].map((i) => zv[i * 4 + j]!);
      const mean = col.reduce((a, x) => a + x, 0) / 6;
      const variance = col.reduce((a, x) => a + (x - mean) ** 2, 0) / 6;
      const ycol = [0, 1, 2, 3, 4, 5].map((i) => y[i * 4 + j]!);
      const ym = ycol.reduce((a, x) => a + x, 0) / 6;
      const yv = ycol.reduce((a, x) => a + (x - ym) ** 2, 0);
      // z = (y − mean) / √(var + ε): mean 0 (to rounding of the column's scale), variance var/(var + ε)
      expectClose(mean, 0, { rtol: RTOL, scale: Math.max(...col.map(Math.abs)), what: 'mean' });
      expectClose(variance, yv / 6 / (yv / 6 + 1e-5), { rtol: RTOL, what: 'variance' });
      expectClose(reg.runningMean!.dataSync()[j]!, 0.1 * ym, {
        rtol: RTOL,
        scale: 0.1 * Math.max(...ycol.map(Math.abs)),
        what: 'running mean',
      });
      expectClose(reg.runningVar!.dataSync()[j]!, 0.9 + (0.1 * yv) / 5, { rtol: RTOL, what: 'running var' });
    }
    // evaluation uses the running statistics
    const ev = arr(reg.project(s, false));
    const rm = arr(reg.runningMean!);
    const rv = arr(reg.runningVar!);
    expectClose(ev[5]!, (y[5]! - rm[1]!) / Math.sqrt(rv[1]! + 1e-5), {
      rtol: RTOL,
      scale: Math.max(...ev.map(Math.abs)),
    });
    // gradients into student, projection, γ and β
    expect(reg.trainableVariables).toHaveLength(4);
    const vars = [s, ...reg.trainableVariables];
    const { grads } = tf.variableGrads(() => reg.forward(t, s), vars);
    for (const v of vars)
      checkGrad(
        () => reg.forward(t, s),
        v,
        grads[v.name]!.dataSync(),
        [0, 1, 3].filter((i) => i < v.size),
      );
    expect(() => reg.forward(t, tf.variable(normal(1, 3, 1)))).toThrow(/teacherFeats must be 1×4/);
    expect(() => reg.forward(normal(1, 4, 1), normal(1, 3, 1))).toThrow(
      /Reg-BN: training needs batches of at least 2 rows, found 1/,
    );
    reg.dispose();
  });

  it('CC: cross-entropy of a linear classifier on cluster pseudo-labels, with its gradients', async () => {
    await tf.setBackend(backend);
    const cc = new ClusterClassifier({ studentDim: 3, clusters: 4, seed: 3 });
    const assignments = Int32Array.from([3, 0, 2, 1, 1, 0, 2]);
    const labels = ClusterClassifier.pseudoLabels(assignments, Int32Array.from([6, 0, 3, 1, 2]));
    expect(Array.from(labels)).toEqual([2, 3, 1, 0, 2]);
    const s = tf.variable(normal(5, 3, 5));
    const logits = arr(cc.logits(s));
    let want = 0;
    for (let i = 0; i < 5; i++) {
      const row = logits.slice(i * 4, i * 4 + 4);
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
      want += lse - row[labels[i]!]!;
    }
    want /= 5;
    const vars = [s, ...cc.trainableVariables];
    const { value, grads } = tf.variableGrads(() => cc.forward(s, labels), vars);
    expectClose(value.dataSync()[0]!, want, { rtol: RTOL });
    for (const v of vars)
      checkGrad(
        () => cc.forward(s, labels),
        v,
        grads[v.name]!.dataSync(),
        [0, 2, 4, 9].filter((i) => i < v.size),
      );
    const pred = cc.predict(s);
    for (let i = 0; i < 5; i++) {
      const row = logits.slice(i * 4, i * 4 + 4);
      expect(pred[i]).toBe(row.indexOf(Math.max(...row)));
    }
    expect(() => cc.forward(s, Int32Array.from([0, 1, 4, 0, 0]))).toThrow(
      /CC: label 4 at row 2 is not a cluster in \[0, 4\)/,
    );
    expect(() => cc.forward(s, Int32Array.from([0, 1]))).toThrow(
      /CC: expected 5 labels \(one per row\), found 2/,
    );
    expect(() => ClusterClassifier.pseudoLabels(assignments, Int32Array.from([7]))).toThrow(
      /dataset index 7 \(batch row 0\) has no cluster assignment \(assignments cover 0…6\)/,
    );
    cc.dispose();
  });
});
