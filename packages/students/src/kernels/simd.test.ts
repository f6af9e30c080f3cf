import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Rng } from '@compress/core';
import '@tensorflow/tfjs-backend-cpu';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-wasm';
import { expectClose } from '@compress/vitest-config/close';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import '../gradients.js';
import { batchNormTrainGradImpl, batchNormTrainImpl } from './batch_norm_train_impl.js';
import { registerWasmTrainingKernels } from './register_all_kernels.js';
import { offsetOf, simdOf } from './simd.js';
import { simdKernelsWasm, simdKernelsWasmSourceHash } from './simd-kernels-wasm.js';

const script = new URL('../../scripts/build-wasm.mjs', import.meta.url).pathname;

/** clang's version where it is installed (the build script's own probe), else null. */
const { clangVersion } = (await import(script)) as { clangVersion: () => string | null };

/** max |x| over `a`. */
const maxAbsOf = (a: ArrayLike<number>): number => Math.max(...Array.from(a, Math.abs));

describe('simd-kernels-wasm.ts (the compiled kernels)', () => {
  it('was compiled from the current simd_kernels.c and flags', async () => {
    const { flags } = (await import(script)) as { flags: string[] };
    const h = createHash('sha256');
    h.update(readFileSync(new URL('simd_kernels.c', import.meta.url)));
    h.update(flags.join(' '));
    expect(simdKernelsWasmSourceHash).toBe(h.digest('hex'));
    expect(Buffer.from(simdKernelsWasm, 'base64').subarray(0, 4)).toEqual(Buffer.from([0, 0x61, 0x73, 0x6d]));
  });

  it.runIf(clangVersion() !== null)(
    'is byte for byte what clang compiles simd_kernels.c to (where clang is installed)',
    () => {
      const out = execFileSync(process.execPath, [script, '--check'], { encoding: 'utf8' });
      expect(out).toContain('up to date');
    },
  );
});

/**
 * The statistics are float64 sums rounded once to float32 (1/√ once more), in both versions: a few
 * float32 roundings (6e-8) of their scale (measured: equal here).
 */
const STAT_RTOL = 2e-7;
/**
 * y, dx, dγ, dβ: a few float32 products and sums per entry, in another order than the typed-array
 * version: measured ≤ 3.2e-7 of the scale, allowed 2e-6 (the former 1e-5 / 1e-4 on values up to 6 / 40).
 */
const RTOL = 2e-6;

describe('SIMD kernels on the wasm heap', () => {
  let backend: BackendWasm;
  beforeAll(async () => {
    registerWasmTrainingKernels();
    await tf.setBackend('wasm');
    backend = tf.backend() as BackendWasm;
  });

  it('run on the backend memory', () => {
    expect(simdOf(backend)).not.toBeNull();
  });

  for (const [rows, c] of [
    [37, 20],
    [300, 7],
    [5, 1],
  ] as const) {
    const activations = ['linear', 'relu', 'relu6'] as const;
    for (const act of [0, 1, 2] as const) {
      it(`BatchNorm forward and backward match the typed-array version (${rows}×${c}, activation ${act})`, () => {
        const rng = new Rng(rows * 10 + c + act);
        const x = rng.fillNormal(new Float32Array(rows * c), 3, 2);
        const dy = rng.fillNormal(new Float32Array(rows * c));
        const gamma = rng.fillUniform(new Float32Array(c), 0.5, 2);
        const beta = rng.fillNormal(new Float32Array(c));
        const ref = {
          y: new Float32Array(rows * c),
          mean: new Float32Array(c),
          variance: new Float32Array(c),
          invStd: new Float32Array(c),
          dx: new Float32Array(rows * c),
          dGamma: new Float32Array(c),
          dBeta: new Float32Array(c),
        };
        batchNormTrainImpl(x, gamma, beta, c, 1e-5, ref.y, ref.mean, ref.variance, ref.invStd, act);
        batchNormTrainGradImpl(
          dy,
          x,
          ref.mean,
          ref.invStd,
          gamma,
          c,
          ref.dx,
          ref.dGamma,
          ref.dBeta,
          act,
          ref.y,
        );
        const ts = tf.tidy(() => {
          const xt = tf.tensor2d(x, [rows, c]);
          const [y, mean, variance, invStd] = tf.engine().runKernel(
            'CompressBatchNormTrain',
            { x: xt, gamma: tf.tensor1d(gamma), beta: tf.tensor1d(beta) },
            {
              eps: 1e-5,
              activation: activations[act],
            },
          ) as tf.Tensor[];
          const inputs = {
            dy: tf.tensor2d(dy, [rows, c]),
            x: xt,
            mean: mean!,
            invStd: invStd!,
            gamma: tf.tensor1d(gamma),
          };
          const grads = tf
            .engine()
            .runKernel('CompressBatchNormTrainGrad', act === 0 ? inputs : { ...inputs, y: y! }, {
              activation: activations[act],
            }) as tf.Tensor[];
          return [y!, mean!, variance!, invStd!, ...grads].map((t) => t.dataSync() as Float32Array);
        });
        const [y, mean, variance, invStd, dx, dGamma, dBeta] = ts as Float32Array[];
        // a mean may be near 0: its rounding is a fraction of the values averaged
        expectClose(mean!, ref.mean, { rtol: STAT_RTOL, scale: maxAbsOf(x), what: 'mean' });
        expectClose(variance!, ref.variance, { rtol: STAT_RTOL, what: 'variance' });
        expectClose(invStd!, ref.invStd, { rtol: STAT_RTOL, what: '1/√(var + ε)' });
        expectClose(y!, ref.y, { rtol: RTOL, what: 'y' });
        expectClose(dx!, ref.dx, { rtol: RTOL, what: 'dx' });
        expectClose(dGamma!, ref.dGamma, { rtol: RTOL, what: 'dγ' });
        expectClose(dBeta!, ref.dBeta, { rtol: RTOL, what: 'dβ' });
      });
    }
  }

  for (const [shape, k, s, pad] of [
    [[2, 9, 9, 8], 3, 2, 'valid'],
    [[1, 8, 7, 6], 3, 2, 'same'],
    [[3, 6, 6, 5], 2, 2, 'valid'],
    [[2, 5, 5, 4], 3, 1, 'same'],
  ] as const) {
    it(`MaxPoolGrad matches the cpu backend, ties included (${shape.join('×')} k${k} s${s} ${pad})`, async () => {
      const rng = new Rng(shape[1] * 7 + k);
      const n = shape.reduce((p: number, q: number) => p * q, 1);
      // values on a coarse grid: many windows hold their maximum twice
      const x = Float32Array.from({ length: n }, () => Math.floor(rng.next() * 5));
      const run = async (name: string) => {
        await tf.setBackend(name);
        return tf.tidy(() => {
          const xt = tf.tensor4d(x, [...shape] as [number, number, number, number]);
          const f = (a: tf.Tensor) => tf.maxPool(a as tf.Tensor4D, k, s, pad);
          const y = f(xt);
          const g = tf.tensor(
            Float32Array.from({ length: y.size }, (_, i) => (i % 13) + 1),
            y.shape,
          );
          return tf
            .grad((a: tf.Tensor) => tf.sum(tf.mul(f(a), g)))(xt)
            .dataSync() as Float32Array;
        });
      };
      const cpu = await run('cpu');
      const wasm = await run('wasm');
      expect(Array.from(wasm)).toEqual(Array.from(cpu));
    });
  }

  it('reads tensors at their heap offsets', () => {
    const t = tf.tensor1d([1, 2, 3]);
    const info = backend.typedArrayFromHeap(t as unknown as tf.TensorInfo) as Float32Array;
    expect(offsetOf(backend, t as unknown as tf.TensorInfo)).toBe(info.byteOffset);
    t.dispose();
  });
});
