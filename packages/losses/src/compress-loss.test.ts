import { totalmem } from 'node:os';
import { CompressError, Rng } from '@compress/core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { expectClose } from '@compress/vitest-config/close';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it } from 'vitest';
import { CompressLoss, type CompressLossOptions } from './compress-loss.js';
import { variantSpec } from './variants/spec.js';

const live: CompressLoss[] = [];
function make(options: CompressLossOptions): CompressLoss {
  const l = new CompressLoss(options);
  live.push(l);
  return l;
}
afterEach(() => {
  for (const l of live.splice(0)) l.dispose();
});

function normal(rows: number, dim: number, seed: number): tf.Tensor2D {
  return tf.tensor2d(new Rng(seed).fillNormal(new Float32Array(rows * dim)), [rows, dim]);
}

/** Loss value without touching the queues. */
function lossValue(loss: CompressLoss, t: tf.Tensor2D, s: tf.Tensor2D, k?: tf.Tensor2D): number {
  const v = loss.forward(t, s, k);
  loss.discard();
  const x = v.dataSync()[0]!;
  v.dispose();
  return x;
}

const backends = ['cpu', 'wasm'] as const;

describe.each(backends)('CompressLoss invariants on %s', (backend) => {
  const setup = async () => {
    await tf.setBackend(backend);
    await tf.ready();
  };

  it('picks onnxruntime where installed, else the engine of the backend, and the engine asked for', async () => {
    await setup();
    expect(make({ teacherDim: 4, studentDim: 3, queueSize: 16, batchSize: 4 }).engineName).toBe(
      'onnxruntime',
    );
    expect(
      make({ teacherDim: 4, studentDim: 3, queueSize: 16, batchSize: 4, engine: 'onnxruntime' }).engineName,
    ).toBe('onnxruntime');
    expect(make({ teacherDim: 4, studentDim: 3, queueSize: 16, engine: 'tfjs' }).engineName).toBe('tfjs');
    expect(() => make({ teacherDim: 4, studentDim: 3, queueSize: 16, engine: 'gpu' as 'tfjs' })).toThrow(
      `CompressLoss: engine must be 'auto', 'onnxruntime', 'wasm' or 'tfjs', got "gpu"`,
    );
    expect(() => make({ teacherDim: 4, studentDim: 3, queueSize: 16, threads: -1 })).toThrow(
      `CompressLoss: threads must be an integer from 0 (one per core) to 256, got -1`,
    );
    if (backend === 'cpu') {
      expect(() => make({ teacherDim: 4, studentDim: 3, queueSize: 16, engine: 'wasm' })).toThrow(
        /engine 'wasm' needs the tfjs wasm backend .* found backend 'cpu'/,
      );
    }
  });

  it.each(['no-momentum', 'momentum', 'one-queue'] as const)(
    '%s: loss ≥ 0 over several random batches',
    async (variant) => {
      await setup();
      const loss = make({
        variant,
        teacherDim: 10,
        studentDim: 6,
        queueSize: 37,
        batchSize: 5,
        seed: variant,
      });
      for (let step = 0; step < 10; step++) {
        const v = loss.forward(
          normal(5, 10, step),
          normal(5, 6, 100 + step),
          variant === 'momentum' ? normal(5, 6, 200 + step) : undefined,
        );
        expect(v.dataSync()[0]).toBeGreaterThanOrEqual(0);
        v.dispose();
        loss.update();
      }
      expect(loss.step).toBe(10);
      expect(loss.teacherQueue.pointer).toBe(50 % 37);
    },
  );

  it('loss = 0 (and gradient 0) when the student similarities coincide with the teacher ones', async () => {
    await setup();
    const rng = new Rng(5);
    const queue = rng.fillUniform(new Float32Array(20 * 8), -0.5, 0.5);
    const loss = make({
      variant: 'no-momentum',
      teacherDim: 8,
      studentDim: 8,
      queueSize: 20,
      batchSize: 6,
      initial: { teacherQueue: queue, studentQueue: queue },
    });
    const t = normal(6, 8, 1);
    // A loss that should vanish has no scale of its own: that of another student's loss and
    // gradient on the same queues is the scale its float32 rounding is a fraction of.
    const other = tf.variable(normal(6, 8, 3));
    const typical = tf.variableGrads(() => loss.forward(t, other), [other]);
    loss.discard();
    const s = tf.variable(tf.mul(t, 3) as tf.Tensor2D); // same directions, other scale
    const { value, grads } = tf.variableGrads(() => loss.forward(t, s), [s]);
    expectClose(value.dataSync()[0]!, 0, {
      rtol: 1e-5,
      scale: typical.value.dataSync()[0]!,
      what: 'loss',
    });
    const g = grads[s.name]!.dataSync();
    expectClose(g, new Float32Array(g.length), {
      rtol: 1e-5,
      scale: Math.max(...Array.from(typical.grads[other.name]!.dataSync(), Math.abs)),
      what: 'gradient',
    });
    // …and > 0 when they do not
    expect(lossValue(loss.update() && loss, normal(6, 8, 2), normal(6, 8, 3))).toBeGreaterThan(0.01);
  });

  it.each(['no-momentum', 'one-queue'] as const)(
    '%s: gradients match central finite differences',
    async (variant) => {
      await setup();
      const B = 3;
      const Ds = 4;
      const loss = make({
        variant,
        teacherDim: 5,
        studentDim: Ds,
        queueSize: 9,
        temperature: 0.5,
        batchSize: B,
        seed: 11,
      });
      const t = normal(B, 5, 1);
      const sv = new Rng(2).fillNormal(new Float32Array(B * Ds));
      const s = tf.variable(tf.tensor2d(sv, [B, Ds]));
      const vars = [s, ...loss.trainableVariables];
      const { grads } = tf.variableGrads(() => loss.forward(t, s), vars);
      loss.discard();
      const eps = 1e-2;
      // Differences with step 1e-2 are off by O(step²) (the 2e-2 of |fd|) and by the float32
      // rounding of the loss over the step, which scales with the loss: the floor is a fraction of it.
      const floor = 2e-3 * lossValue(loss, t, s);
      const analytic = grads[s.name]!.dataSync();
      for (let i = 0; i < sv.length; i++) {
        const plus = sv.slice();
        plus[i]! += eps;
        const minus = sv.slice();
        minus[i]! -= eps;
        const fd =
          (lossValue(loss, t, tf.tensor2d(plus, [B, Ds])) - lossValue(loss, t, tf.tensor2d(minus, [B, Ds]))) /
          (2 * eps);
        expect(Math.abs(fd - analytic[i]!), `d/ds[${i}]: ${fd} vs ${analytic[i]}`).toBeLessThan(
          floor + 2e-2 * Math.abs(fd),
        );
      }
      if (loss.head !== null) {
        const w = loss.head.weight;
        const w0 = w.dataSync().slice();
        const gw = grads[w.name]!.dataSync();
        for (const i of [0, 3, 7, 12, 19]) {
          const at = (d: number) => {
            const x = w0.slice();
            x[i]! += d;
            w.assign(tf.tensor2d(x, w.shape as [number, number]));
            return lossValue(loss, t, s);
          };
          const fd = (at(eps) - at(-eps)) / (2 * eps);
          expect(Math.abs(fd - gw[i]!), `d/dW[${i}]: ${fd} vs ${gw[i]}`).toBeLessThan(
            floor + 2e-2 * Math.abs(fd),
          );
        }
        w.assign(tf.tensor2d(w0, w.shape as [number, number]));
      }
    },
  );

  it.each(['no-momentum', 'one-queue'] as const)(
    '%s: gradients reach a student computed inside the tape (an intermediate tensor)',
    async (variant) => {
      await setup();
      const loss = make({ variant, teacherDim: 5, studentDim: 4, queueSize: 9, batchSize: 3, seed: 4 });
      const t = normal(3, 5, 1);
      const v = tf.variable(normal(3, 4, 2));
      // s = 2v through a custom op: s is freed when the forward's scope ends
      const double = tf.customGrad(((x: tf.Tensor) => ({
        value: tf.mul(x, 2),
        gradFunc: (dy: tf.Tensor) => tf.mul(dy, 2),
      })) as unknown as Parameters<typeof tf.customGrad<tf.Tensor2D>>[0]);
      const viaOp = tf.variableGrads(
        () => loss.forward(t, double(v) as tf.Tensor2D),
        [v, ...loss.trainableVariables],
      );
      loss.discard();
      const s = tf.variable(tf.mul(v, 2) as tf.Tensor2D);
      const direct = tf.variableGrads(() => loss.forward(t, s), [s, ...loss.trainableVariables]);
      loss.discard();
      const gv = viaOp.grads[v.name]!.dataSync();
      const gs = direct.grads[s.name]!.dataSync();
      expectClose(
        gv,
        Array.from(gs, (x) => 2 * x),
        { rtol: 1e-6, what: 'd/dv' },
      );
      for (const w of loss.trainableVariables) {
        expect(Array.from(viaOp.grads[w.name]!.dataSync())).toEqual(
          Array.from(direct.grads[w.name]!.dataSync()),
        );
      }
    },
  );

  it.each([0.02, 0.005])('T = %s does not overflow (log-softmax form) and matches float64', async (T) => {
    await setup();
    const K = 12;
    const D = 6;
    const t = normal(4, D, 7);
    const s = normal(4, D, 8);
    // Queue rows equal to the normalised teacher rows: similarities of 1, logits of 1/T (up to 200).
    const tv = t.dataSync();
    const queue = new Rng(1).fillUniform(new Float32Array(K * D), -0.1, 0.1);
    for (let i = 0; i < 4; i++) {
      let n = 0;
      for (let j = 0; j < D; j++) n += tv[i * D + j]! ** 2;
      for (let j = 0; j < D; j++) queue[i * D + j] = tv[i * D + j]! / Math.sqrt(n);
    }
    const loss = make({
      variant: 'no-momentum',
      teacherDim: D,
      studentDim: D,
      queueSize: K,
      temperature: T,
      batchSize: 4,
      initial: { teacherQueue: queue, studentQueue: queue },
    });
    const got = lossValue(loss, t, s);
    // float64 reference
    const norm = (x: Float32Array, i: number) => {
      let n = 0;
      for (let j = 0; j < D; j++) n += x[i * D + j]! ** 2;
      return Array.from({ length: D }, (_, j) => x[i * D + j]! / Math.sqrt(n));
    };
    let want = 0;
    for (let i = 0; i < 4; i++) {
      const ti = norm(tv as Float32Array, i);
      const si = norm(s.dataSync() as Float32Array, i);
      const a = Array.from(
        { length: K },
        (_, k) => ti.reduce((acc, x, j) => acc + x * queue[k * D + j]!, 0) / T,
      );
      const b = Array.from(
        { length: K },
        (_, k) => si.reduce((acc, x, j) => acc + x * queue[k * D + j]!, 0) / T,
      );
      const lse = (v: number[]) =>
        Math.max(...v) + Math.log(v.reduce((acc, x) => acc + Math.exp(x - Math.max(...v)), 0));
      const la = lse(a);
      const lb = lse(b);
      for (let k = 0; k < K; k++) want += Math.exp(a[k]! - la) * (a[k]! - la - (b[k]! - lb));
    }
    want /= 4;
    expect(Number.isFinite(got)).toBe(true);
    // Float32 similarities (a few roundings of 1) scaled to logits of up to 1/T: the loss (≈ 0.7/T
    // here) is off by a few roundings of that scale (measured ≤ 1.2e-7 of it), allowed 1e-4 as before.
    expectClose(got, want, { rtol: 1e-4, what: 'loss' });
  });

  it('restores a state exactly: same queues, pointer, step, head and next loss', async () => {
    await setup();
    for (const variant of ['momentum', 'one-queue'] as const) {
      const a = make({ variant, teacherDim: 6, studentDim: 4, queueSize: 10, batchSize: 4, seed: 1 });
      for (let i = 0; i < 3; i++) {
        a.forward(
          normal(4, 6, i),
          normal(4, 4, 10 + i),
          variant === 'momentum' ? normal(4, 4, 20 + i) : undefined,
        ).dispose();
        a.update();
      }
      const state = a.state();
      const b = make({ variant, teacherDim: 6, studentDim: 4, queueSize: 10, batchSize: 4, seed: 2 });
      b.restore(state);
      expect(b.step).toBe(3);
      expect(b.teacherQueue.pointer).toBe(2);
      expect(b.teacherQueue.values()).toEqual(a.teacherQueue.values());
      expect(b.studentQueue?.values()).toEqual(a.studentQueue?.values());
      expect(b.head?.weight.dataSync()).toEqual(a.head?.weight.dataSync());
      const k = variant === 'momentum' ? normal(4, 4, 99) : undefined;
      expect(lossValue(b, normal(4, 6, 97), normal(4, 4, 98), k)).toBe(
        lossValue(a, normal(4, 6, 97), normal(4, 4, 98), k),
      );
      const c = make({ variant, teacherDim: 6, studentDim: 4, queueSize: 10, temperature: 0.07 });
      expect(() => c.restore(state)).toThrow(/state was made with temperature = 0.04, this loss has 0.07/);
      expect(() => c.restore({ ...state, kind: 'x' } as never)).toThrow(/not a CompressLoss state/);
    }
  });

  it('refuses NaN/Inf inputs naming the step, before touching the queues', async () => {
    await setup();
    const loss = make({ variant: 'momentum', teacherDim: 4, studentDim: 3, queueSize: 8, batchSize: 2 });
    loss.forward(normal(2, 4, 1), normal(2, 3, 2), normal(2, 3, 3)).dispose();
    loss.update();
    const tq = loss.teacherQueue.values().slice();
    const sq = loss.studentQueue!.values().slice();
    const bad = (x: tf.Tensor2D, i: number, v: number) => {
      const d = x.dataSync().slice();
      d[i] = v;
      return tf.tensor2d(d, x.shape);
    };
    expect(() => loss.forward(bad(normal(2, 4, 1), 5, Number.NaN), normal(2, 3, 2), normal(2, 3, 3))).toThrow(
      /CompressLoss step 1: teacherFeats: found NaN at row 1, column 1 .*; the queues were not changed/,
    );
    expect(() =>
      loss.forward(normal(2, 4, 1), bad(normal(2, 3, 2), 0, Number.POSITIVE_INFINITY), normal(2, 3, 3)),
    ).toThrow(/CompressLoss step 1: studentFeats: found Infinity at row 0, column 0/);
    expect(() => loss.forward(normal(2, 4, 1), normal(2, 3, 2), bad(normal(2, 3, 3), 2, Number.NaN))).toThrow(
      /step 1: keyFeats: found NaN/,
    );
    expect(() => loss.forward(normal(2, 4, 1), tf.zeros([2, 3]), normal(2, 3, 3))).toThrow(
      /normalised studentFeats \(a zero row has no direction\)/,
    );
    try {
      loss.forward(normal(2, 4, 1), normal(2, 3, 2), bad(normal(2, 3, 3), 2, Number.NaN));
    } catch (e) {
      expect(e).toBeInstanceOf(CompressError);
      expect((e as CompressError).code).toBe('NON_FINITE');
    }
    expect(() => loss.update()).toThrow(/update\(\) needs a forward\(\) first/);
    expect(loss.teacherQueue.values()).toEqual(tq);
    expect(loss.studentQueue!.values()).toEqual(sq);
    expect(loss.teacherQueue.pointer).toBe(2);
  });

  it('checks the order of calls, shapes and the key features', async () => {
    await setup();
    const m = make({ variant: 'momentum', teacherDim: 4, studentDim: 3, queueSize: 8, batchSize: 2 });
    expect(() => m.forward(normal(2, 4, 1), normal(2, 3, 2))).toThrow(/the momentum variant needs keyFeats/);
    m.forward(normal(2, 4, 1), normal(2, 3, 2), normal(2, 3, 3)).dispose();
    expect(() => m.forward(normal(2, 4, 1), normal(2, 3, 2), normal(2, 3, 3))).toThrow(
      /forward\(\) was called again before update\(\)/,
    );
    const n = make({ variant: 'no-momentum', teacherDim: 4, studentDim: 3, queueSize: 8, batchSize: 2 });
    expect(() => n.forward(normal(2, 4, 1), normal(2, 3, 2), normal(2, 3, 3))).toThrow(
      /keyFeats is only used by the momentum variant, this loss is 'no-momentum'/,
    );
    expect(() => n.forward(normal(2, 5, 1), normal(2, 3, 2))).toThrow(
      /teacherFeats must be 2×4 \(B×D\), found shape \[2,5\]/,
    );
    expect(() => n.forward(normal(2, 4, 1), normal(2, 2, 2))).toThrow(
      /studentFeats must be a B×3 tensor, found shape \[2,2\]/,
    );
    expect(() => n.forward(normal(9, 4, 1), normal(9, 3, 2))).toThrow(
      /batch size must be between 1 and K = 8, found 9/,
    );
    // a FeatureMatrix works as teacher input
    const fm = { rows: 2, dim: 4, data: normal(2, 4, 1).dataSync() as Float32Array };
    n.forward(fm, normal(2, 3, 2)).dispose();
    expect(Array.from(n.update())).toEqual([0, 1]);
    // the student queue holds the normalised student rows (no-momentum)
    const row = n.studentQueue!.row(0);
    // a float32 row divided by its float32 norm: a few roundings (6e-8) of 1 (measured 9e-9)
    expectClose(Math.hypot(...row), 1, { rtol: 5e-7, what: '‖row‖' });
  });

  it('weighs K against the training set: warns when K > N/2, refuses K ≥ N', async () => {
    await setup();
    const warnings: string[] = [];
    make({
      teacherDim: 4,
      studentDim: 3,
      queueSize: 600,
      datasetSize: 1000,
      onWarning: (m) => warnings.push(m),
    });
    expect(warnings).toEqual([
      expect.stringMatching(/K = 600 is more than half the training set \(N = 1000\).*K ≤ 500/),
    ]);
    make({
      teacherDim: 4,
      studentDim: 3,
      queueSize: 500,
      datasetSize: 1000,
      onWarning: (m) => warnings.push(m),
    });
    expect(warnings).toHaveLength(1);
    expect(() => make({ teacherDim: 4, studentDim: 3, queueSize: 1000, datasetSize: 1000 })).toThrow(
      /queueSize K = 1000 is not smaller than the training set \(N = 1000\).*use K < 1000, best K ≤ N\/2 = 500/,
    );
  });

  it.each(['momentum', 'one-queue'] as const)(
    '%s: a training step leaves no tensor behind',
    async (variant) => {
      await setup();
      const loss = make({ variant, teacherDim: 6, studentDim: 4, queueSize: 20, batchSize: 4 });
      const t = normal(4, 6, 1);
      const k = variant === 'momentum' ? normal(4, 4, 3) : undefined;
      const s = tf.variable(normal(4, 4, 2));
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) {
        const { value, grads } = tf.variableGrads(
          () => loss.forward(t, s, k),
          [s, ...loss.trainableVariables],
        );
        loss.update();
        tf.dispose([value, grads]);
      }
      expect(tf.memory().numTensors).toBe(before);
    },
  );

  it('validates options with messages naming them', async () => {
    await setup();
    expect(() => make({ teacherDim: 0, studentDim: 3 })).toThrow(
      /teacherDim must be a positive integer, got 0/,
    );
    expect(() => make({ teacherDim: 4, studentDim: 3, temperature: 0 })).toThrow(
      /temperature must be a positive number, got 0/,
    );
    expect(() => make({ teacherDim: 4, studentDim: 3, variant: 'other' as never })).toThrow(
      /unexpected variant/,
    );
    const d = make({ teacherDim: 4, studentDim: 3, queueSize: 300 });
    expect(d.options).toMatchObject({ variant: 'momentum', temperature: 0.04, batchSize: 256, seed: 0 });
  });
});

/** The loss in float64 from the definitions, against `loss`'s current queues (and head). */
function reference64(loss: CompressLoss, teacher: tf.Tensor2D, student: tf.Tensor2D): number {
  const T = loss.options.temperature;
  const [B, Dt] = teacher.shape;
  const tq = loss.teacherQueue.values();
  const sQueue = loss.studentQueue ?? loss.teacherQueue;
  const sq = sQueue.values();
  const K = loss.teacherQueue.size;
  const tv = teacher.dataSync();
  let sv = Float64Array.from(student.dataSync());
  let ds = student.shape[1];
  if (loss.head !== null) {
    const w = loss.head.weight.dataSync();
    const b = loss.head.bias.dataSync();
    const h = new Float64Array(B * Dt);
    for (let i = 0; i < B; i++)
      for (let j = 0; j < Dt; j++) {
        let acc = b[j]!;
        for (let k = 0; k < ds; k++) acc += sv[i * ds + k]! * w[k * Dt + j]!;
        h[i * Dt + j] = acc;
      }
    sv = h;
    ds = Dt;
  }
  const logits = (x: ArrayLike<number>, d: number, q: Float32Array, i: number) => {
    let n = 0;
    for (let j = 0; j < d; j++) n += x[i * d + j]! ** 2;
    n = Math.sqrt(n);
    const out = new Float64Array(K);
    for (let k = 0; k < K; k++) {
      let acc = 0;
      for (let j = 0; j < d; j++) acc += (x[i * d + j]! / n) * q[k * d + j]!;
      out[k] = acc / T;
    }
    const m = Math.max(...out);
    let z = 0;
    for (const v of out) z += Math.exp(v - m);
    return out.map((v) => v - m - Math.log(z));
  };
  let total = 0;
  for (let i = 0; i < B; i++) {
    const lp = logits(tv, Dt, tq, i);
    const lq = logits(sv, ds, sq, i);
    for (let k = 0; k < K; k++) total += Math.exp(lp[k]!) * (lp[k]! - lq[k]!);
  }
  return total / B;
}

describe.each(['wasm', 'onnxruntime'] as const)('the %s engine against the tfjs engine', (engine) => {
  it.each(['no-momentum', 'momentum', 'one-queue'] as const)(
    '%s: same loss, gradients and queues over several chunks, with B not a multiple of 4',
    async (variant) => {
      await tf.setBackend('wasm');
      await tf.ready();
      const options = { variant, teacherDim: 16, studentDim: 12, queueSize: 2500, batchSize: 10, seed: 3 };
      const fast = make({ ...options, engine });
      const ref = make({ ...options, engine: 'tfjs' });
      expect(fast.engineName).toBe(engine);
      expect(ref.engineName).toBe('tfjs');
      for (let step = 0; step < 3; step++) {
        const t = normal(10, 16, step);
        const key = variant === 'momentum' ? normal(10, 12, 50 + step) : undefined;
        const want = reference64(fast, t, normal(10, 12, 100 + step));
        const out = [fast, ref].map((l) => {
          const s = tf.variable(normal(10, 12, 100 + step));
          const { value, grads } = tf.variableGrads(() => l.forward(t, s, key), [s, ...l.trainableVariables]);
          l.update();
          return {
            loss: value.dataSync()[0]!,
            grads: [s, ...l.trainableVariables].map((v) => grads[v.name]!.dataSync()),
          };
        });
        const [a, b] = out as [(typeof out)[0], (typeof out)[0]];
        // The wasm engine sums in float64 (measured ≤ 2e-7 of the loss); the float32 reductions of the
        // others over K = 2500 terms are a little looser (measured ≤ 1.2e-5 for tfjs, 1.5e-7 onnxruntime).
        expectClose(a.loss, want, { rtol: engine === 'wasm' ? 2e-6 : 3e-5, what: `${engine} loss` });
        expectClose(b.loss, want, { rtol: 3e-5, what: 'tfjs loss' });
        // float32 gradients, summed over the queue in other orders: measured ≤ 3.1e-6 of their scale
        for (const [i, g] of a.grads.entries()) {
          expectClose(g, b.grads[i]!, { rtol: 1e-4, what: `${engine} gradient ${i}` });
        }
      }
      expect(fast.teacherQueue.values()).toEqual(ref.teacherQueue.values());
      expect(fast.teacherQueue.pointer).toBe(30);
      if (variant !== 'one-queue') expect(fast.studentQueue!.values()).toEqual(ref.studentQueue!.values());
    },
  );
});

/** Rows of `x` (B×D) divided by their norms, in float64. */
function unitRows(x: tf.Tensor2D): Float64Array {
  const [b, d] = x.shape;
  const v = x.dataSync();
  const out = new Float64Array(b * d);
  for (let i = 0; i < b; i++) {
    const n = Math.hypot(...v.subarray(i * d, (i + 1) * d));
    for (let j = 0; j < d; j++) out[i * d + j] = v[i * d + j]! / n;
  }
  return out;
}

const engineSetups = [
  { backend: 'cpu', engine: 'tfjs' },
  { backend: 'wasm', engine: 'wasm' },
  { backend: 'cpu', engine: 'onnxruntime' },
] as const;

describe.each(engineSetups)('queues and similarities on the $engine engine', ({ backend, engine }) => {
  it.each(['momentum', 'no-momentum', 'one-queue'] as const)(
    '%s: update() writes the teacher rows, and the key rows / student rows / nothing into the student queue',
    async (variant) => {
      await tf.setBackend(backend);
      await tf.ready();
      const K = 10;
      const B = 4;
      // The write pointer starts two rows before the end: rows 8, 9, 0, 1 are written.
      const loss = make({
        variant,
        teacherDim: 6,
        studentDim: 5,
        queueSize: K,
        batchSize: B,
        seed: 7,
        engine,
        initial: { pointer: K - 2 },
      });
      expect(loss.engineName).toBe(engine);
      const t = normal(B, 6, 1);
      const s = normal(B, 5, 2);
      const k = variant === 'momentum' ? normal(B, 5, 3) : undefined;
      const tqBefore = loss.teacherQueue.values().slice();
      const sqBefore = loss.studentQueue?.values().slice();
      loss.forward(t, s, k).dispose();
      // forward writes nothing
      expect(loss.teacherQueue.values()).toEqual(tqBefore);
      expect(loss.studentQueue?.values()).toEqual(sqBefore);
      const written = [8, 9, 0, 1];
      expect(Array.from(loss.update())).toEqual(written);
      expect(loss.teacherQueue.pointer).toBe(2);

      /** Queue `q` after the step: `rows` (B×D, float64) at the written rows, `before` elsewhere. */
      const expectQueue = (
        q: Float32Array,
        before: Float32Array,
        rows: Float64Array,
        d: number,
        what: string,
      ) => {
        const want = Float64Array.from(before);
        for (const [i, r] of written.entries()) want.set(rows.subarray(i * d, (i + 1) * d), r * d);
        // Normalised float32 rows: a few roundings (6e-8) of 1 (measured ≤ 2.9e-8); the other rows exact.
        expectClose(q, want, { rtol: 5e-7, scale: 1, what });
        for (let r = 0; r < K; r++) {
          if (written.includes(r)) continue;
          expect(Array.from(q.subarray(r * d, (r + 1) * d)), `${what}: row ${r} untouched`).toEqual(
            Array.from(before.subarray(r * d, (r + 1) * d)),
          );
        }
      };
      expectQueue(loss.teacherQueue.values(), tqBefore, unitRows(t), 6, 'teacher queue');
      if (variant === 'one-queue') {
        // the student (and its head's outputs) are compared with the teacher queue, never written
        expect(loss.studentQueue).toBeNull();
        expect(sqBefore).toBeUndefined();
      } else {
        expect(loss.studentQueue!.pointer).toBe(2);
        const rows = unitRows(variant === 'momentum' ? k! : s);
        expectQueue(loss.studentQueue!.values(), sqBefore!, rows, 5, 'student queue');
      }
      tf.dispose([t, s, k].filter((x) => x !== undefined));
    },
  );

  it.each(['momentum', 'no-momentum', 'one-queue'] as const)(
    '%s: similarities() writes nothing and gives the loss forward() computes',
    async (variant) => {
      await tf.setBackend(backend);
      await tf.ready();
      const K = 40;
      const B = 5;
      const loss = make({
        variant,
        teacherDim: 6,
        studentDim: 5,
        queueSize: K,
        batchSize: B,
        seed: 9,
        engine,
      });
      const t = normal(B, 6, 4);
      const s = normal(B, 5, 5);
      const k = variant === 'momentum' ? normal(B, 5, 6) : undefined;
      const tq = loss.teacherQueue.values().slice();
      const sq = loss.studentQueue?.values().slice();
      const sim = loss.similarities(t, s, k);
      expect(loss.teacherQueue.values()).toEqual(tq);
      expect(loss.studentQueue?.values()).toEqual(sq);
      expect(loss.teacherQueue.pointer).toBe(0);
      expect(() => loss.update()).toThrow(/update\(\) needs a forward\(\) first/);
      for (const m of Object.values(sim)) expect(m).toHaveLength(B * K);
      // KL(p‖q) from the engine's p and log q, in float64
      let kl = 0;
      for (let i = 0; i < B * K; i++) {
        const p = sim.teacherProbs[i]!;
        if (p > 0) kl += p * (Math.log(p) - sim.studentLogProbs[i]!);
      }
      kl /= B;
      // Float32 p and log q against the engine's own loss (summed in another order): measured
      // ≤ 8e-8 of the loss on every engine.
      expectClose(kl, lossValue(loss, t, s, k), { rtol: 1e-5, what: 'KL of p and log q' });
      for (let i = 0; i < B; i++) {
        const row = sim.teacherProbs.subarray(i * K, (i + 1) * K);
        expectClose(
          row.reduce((a, x) => a + x, 0),
          1,
          { rtol: 1e-5, what: `Σ p of row ${i}` },
        );
      }
      tf.dispose([t, s, k].filter((x) => x !== undefined));
    },
  );
});

describe('variants', () => {
  it('refuses a name outside the three', () => {
    expect(() => variantSpec('two-queue' as never)).toThrow(/unexpected variant .*"two-queue"/);
  });
});

describe('memory', () => {
  it("defaults to the paper's K = 128000 and T = 0.04", async () => {
    await tf.setBackend('cpu');
    const l = make({ teacherDim: 1, studentDim: 1 });
    expect(l.options).toMatchObject({ queueSize: 128000, temperature: 0.04, batchSize: 256 });
    expect(l.teacherQueue.size).toBe(128000);
  });

  it('refuses, before training, queues that do not fit the wasm heap, saying what would fit', async () => {
    await tf.setBackend('wasm');
    await tf.ready();
    let err: unknown;
    try {
      new CompressLoss({
        variant: 'no-momentum',
        teacherDim: 2048,
        studentDim: 512,
        queueSize: 600000,
        engine: 'wasm',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CompressError);
    expect((err as CompressError).code).toBe('OUT_OF_MEMORY');
    expect((err as Error).message).toMatch(
      /queues of K = 600000 rows \(teacher 2048 \+ student 512 dims\) .* on the wasm engine, which does not fit .* about K = \d+ would fit/,
    );
    const fits = Number(/about K = (\d+)/.exec((err as Error).message)![1]);
    expect(fits).toBeGreaterThan(128000);
    expect(fits).toBeLessThan(600000);
  });

  it('refuses, before training, a queue whose onnxruntime step buffers exceed the free memory', async () => {
    const K = Math.ceil((2 * totalmem()) / (40 * 256));
    let err: unknown;
    try {
      // Queue rows of 1 dim are a few MiB; the step's B×K buffers would be twice the machine's memory.
      new CompressLoss({
        variant: 'no-momentum',
        teacherDim: 1,
        studentDim: 1,
        queueSize: K,
        batchSize: 256,
        engine: 'onnxruntime',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CompressError);
    expect((err as CompressError).code).toBe('OUT_OF_MEMORY');
    expect((err as Error).message).toMatch(
      /queues of K = \d+ rows .* on the onnxruntime engine, which does not fit \(onnxruntime's step buffers for B = 256, K = \d+ need about .* GiB, more than the .* free\); about K = \d+ would fit/,
    );
  });

  it('refuses queues that JavaScript memory cannot hold on the tfjs engine', async () => {
    await tf.setBackend('cpu');
    expect(
      () => new CompressLoss({ teacherDim: 8, studentDim: 8, queueSize: 2 ** 31, engine: 'tfjs' }),
    ).toThrow(/cannot allocate .* float32 values .* in JavaScript memory/);
  });
});
