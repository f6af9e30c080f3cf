import { Rng } from '@compress/core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { expectClose } from '@compress/vitest-config/close';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import '../gradients.js';
import { depthwiseConv2dBackpropFilterImpl } from './DepthwiseConv2dNativeBackpropFilter_impl.js';
import { chunkPlan, setChunkElements } from './onnxruntime.js';
import { registerWasmTrainingKernels, wasmKernelEngine } from './register_all_kernels.js';

type Pad = 'same' | 'valid';
interface Case {
  batch: number;
  size: [number, number];
  cin: number;
  cout: number;
  k: [number, number];
  stride: number;
  pad: Pad;
}

function random(n: number, rng: Rng): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.next() * 2 - 1;
  return a;
}

/** dL/dx and dL/dW of L = Σ conv(x, W) ⊙ g, on the named backend. */
async function grads(
  backend: string,
  depthwise: boolean,
  c: Case,
  x: Float32Array,
  w: Float32Array,
  g: Float32Array,
): Promise<[Float32Array, Float32Array]> {
  await tf.setBackend(backend);
  const wShape: [number, number, number, number] = [
    c.k[0],
    c.k[1],
    c.cin,
    depthwise ? c.cout / c.cin : c.cout,
  ];
  return tf.tidy(() => {
    const xt = tf.tensor4d(x, [c.batch, c.size[0], c.size[1], c.cin]);
    const wt = tf.tensor4d(w, wShape);
    const conv = (a: tf.Tensor4D, b: tf.Tensor4D) =>
      depthwise ? tf.depthwiseConv2d(a, b, c.stride, c.pad) : tf.conv2d(a, b, c.stride, c.pad);
    const outShape = conv(xt, wt).shape;
    const gt = tf.tensor(
      g.subarray(
        0,
        outShape.reduce((p, q) => p * q, 1),
      ),
      outShape,
    );
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(conv(a as tf.Tensor4D, b as tf.Tensor4D), gt)),
    )([xt, wt]);
    return [dx!.dataSync() as Float32Array, dw!.dataSync() as Float32Array] as [Float32Array, Float32Array];
  });
}

/**
 * Convolution gradients: float32 sums of up to batch·out² products (filter) or k²·cout (input) in
 * another order than the cpu backend's, and for onnxruntime in MLAS' own blocking, which differs
 * between AVX2 and AVX-512: measured ≤ 5e-7 of the scale, allowed 1e-4.
 */
const GRAD_RTOL = 1e-4;
/**
 * Forward convolutions and products (sums of up to k²·cin float32 products) and the chunked filter
 * gradients: measured ≤ 2e-6 of the scale (one float32 ulp of its largest value), allowed 1e-5.
 */
const RTOL = 1e-5;

const cases: Case[] = [];
{
  const rng = new Rng(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng.next() * xs.length)]!;
  for (const stride of [1, 2]) {
    for (const pad of ['same', 'valid'] as const) {
      for (const k of [1, 3, 5] as const) {
        cases.push({
          batch: pick([1, 2, 3]),
          size: [pick([5, 7, 8, 9]), pick([6, 7, 11])],
          cin: pick([1, 3, 4]),
          cout: pick([2, 5, 8]),
          k: [k, k],
          stride,
          pad,
        });
      }
    }
  }
  cases.push({ batch: 1, size: [7, 6], cin: 2, cout: 3, k: [3, 2], stride: 2, pad: 'same' });
  cases.push({ batch: 2, size: [4, 4], cin: 3, cout: 4, k: [4, 4], stride: 1, pad: 'valid' });
  // channels onnxruntime's blocked convolutions take (the onnxruntime engine's forward path)
  for (const stride of [1, 2]) {
    for (const pad of ['same', 'valid'] as const) {
      for (const k of [1, 3] as const) {
        cases.push({ batch: 2, size: [9, 8], cin: 8, cout: 16, k: [k, k], stride, pad });
      }
    }
  }
  cases.push({ batch: 3, size: [6, 7], cin: 12, cout: 8, k: [5, 3], stride: 2, pad: 'same' });
}

const cpuReference = new Map<string, [Float32Array, Float32Array]>();

for (const engine of ['wasm', 'onnxruntime'] as const) {
  describe(`${engine} kernels: convolution gradients agree with the cpu backend`, () => {
    beforeAll(async () => {
      registerWasmTrainingKernels({ kernels: engine, threads: 1 });
      await tf.setBackend('wasm');
      await tf.setBackend('cpu');
    });

    for (const depthwise of [false, true]) {
      for (const c of cases) {
        const shape = { ...c, cout: depthwise ? c.cin * (c.cout % 2 === 0 ? 2 : 1) : c.cout };
        const name = `${depthwise ? 'depthwise' : 'conv2d'} B${c.batch} ${c.size.join('×')} ${shape.cin}→${shape.cout} k${c.k.join('×')} s${c.stride} ${c.pad}`;
        it(name, async () => {
          const rng = new Rng(c.batch * 1000 + c.size[0] * 10 + c.k[0]);
          const x = random(c.batch * c.size[0] * c.size[1] * shape.cin, rng);
          const w = random(
            c.k[0] * c.k[1] * shape.cin * (depthwise ? shape.cout / shape.cin : shape.cout),
            rng,
          );
          const g = random(c.batch * c.size[0] * c.size[1] * shape.cout, rng);
          // the cpu reference is the same for both engines: computed once
          const key = `${name}`;
          let ref = cpuReference.get(key);
          if (ref === undefined) {
            ref = await grads('cpu', depthwise, shape, x, w, g);
            cpuReference.set(key, ref);
          }
          const [dxCpu, dwCpu] = ref;
          const [dxWasm, dwWasm] = await grads('wasm', depthwise, shape, x, w, g);
          expectClose(dxWasm, dxCpu, { rtol: GRAD_RTOL, what: 'dx' });
          expectClose(dwWasm, dwCpu, { rtol: GRAD_RTOL, what: 'dW' });
        });
      }
    }

    it('a dilated convolution (which the onnxruntime graphs leave to wasm) matches cpu', async () => {
      const rng = new Rng(5);
      const x = random(2 * 9 * 9 * 8, rng);
      const w = random(3 * 3 * 8 * 8, rng);
      const run = async (backend: string) => {
        await tf.setBackend(backend);
        return tf.tidy(
          () =>
            tf
              .conv2d(tf.tensor4d(x, [2, 9, 9, 8]), tf.tensor4d(w, [3, 3, 8, 8]), 1, 'same', 'NHWC', 2)
              .dataSync() as Float32Array,
        );
      };
      const cpu = await run('cpu');
      expectClose(await run('wasm'), cpu, { rtol: RTOL, what: 'dilated convolution' });
    });

    for (const activation of ['linear', 'relu', 'relu6'] as const) {
      it(`fused convolution with bias and ${activation} matches cpu`, async () => {
        const rng = new Rng(activation.length);
        const x = random(2 * 7 * 7 * 8, rng);
        const w = random(3 * 3 * 8 * 16, rng);
        const b = random(16, rng);
        const run = async (backend: string) => {
          await tf.setBackend(backend);
          return tf.tidy(
            () =>
              tf.fused
                .conv2d({
                  x: tf.mul(tf.tensor4d(x, [2, 7, 7, 8]), 8) as tf.Tensor4D,
                  filter: tf.tensor4d(w, [3, 3, 8, 16]),
                  strides: 1,
                  pad: 'same',
                  bias: tf.tensor1d(b),
                  activation,
                })
                .dataSync() as Float32Array,
          );
        };
        const cpu = await run('cpu');
        expectClose(await run('wasm'), cpu, { rtol: RTOL, what: `fused convolution (${activation})` });
      });
    }
  });
}

describe('kernel engines', () => {
  it('switch both ways: onnxruntime replaces the convolutions, wasm puts the backend ones back', async () => {
    await import('@tensorflow/tfjs-backend-wasm');
    expect(registerWasmTrainingKernels({ kernels: 'wasm' })).toBe('wasm');
    const wasmConv = tf.getKernel('Conv2D', 'wasm')?.kernelFunc;
    const wasmBn = tf.getKernel('CompressBatchNormTrain', 'wasm')?.kernelFunc;
    expect(registerWasmTrainingKernels({ kernels: 'onnxruntime', threads: 1 })).toBe('onnxruntime');
    expect(wasmKernelEngine()).toBe('onnxruntime');
    expect(tf.getKernel('Conv2D', 'wasm')?.kernelFunc).not.toBe(wasmConv);
    expect(tf.getKernel('CompressBatchNormTrain', 'wasm')?.kernelFunc).toBe(wasmBn);
    expect(registerWasmTrainingKernels({ kernels: 'wasm' })).toBe('wasm');
    expect(tf.getKernel('Conv2D', 'wasm')?.kernelFunc).toBe(wasmConv);
    expect(registerWasmTrainingKernels()).toBe('onnxruntime'); // auto: installed here
  });

  it('rejects an unknown engine or thread count, naming it', () => {
    expect(() => registerWasmTrainingKernels({ kernels: 'gpu' as 'wasm' })).toThrow(
      "kernels must be one of auto, wasm, onnxruntime; found 'gpu'",
    );
    expect(() => registerWasmTrainingKernels({ kernels: 'onnxruntime', threads: -1 })).toThrow(
      'threads must be a whole number ≥ 0, found -1',
    );
  });

  it('plans batch chunks that cover the batch once, under the size limit, in at most two sizes', () => {
    expect(chunkPlan(256, [[256, 32, 32, 64]])).toEqual([
      [0, 64],
      [64, 64],
      [128, 64],
      [192, 64],
    ]);
    for (const [batch, per] of [
      [100, 100_000],
      [7, 3_000_000],
      [1, 9_000_000],
      [513, 1],
    ] as const) {
      const plan = chunkPlan(batch, [[batch, per]]);
      expect(plan.reduce((a, [, n]) => a + n, 0)).toBe(batch);
      plan.forEach(([start, n], i) => {
        expect(start).toBe(i === 0 ? 0 : plan[i - 1]![0] + plan[i - 1]![1]);
        expect(n * per <= 1 << 22 || n === 1).toBe(true);
      });
      expect(new Set(plan.map(([, n]) => n)).size).toBeLessThanOrEqual(2);
    }
  });

  it('onnxruntime splits a large batch into chunks and sums filter gradients over them exactly like wasm', async () => {
    // A chunk budget of 2.5 samples: chunks of 2, 2, 1 samples (pointwise: one Gemm per chunk)
    // and 3×3 stride 2 (ConvTranspose input gradient, per-tap filter gradient).
    const rng = new Rng(11);
    const previous = setChunkElements(Math.floor(2.5 * 12 * 12 * 16));
    try {
      for (const c of [
        { batch: 5, size: [12, 12], cin: 16, cout: 8, k: [1, 1], stride: 1, pad: 'same' },
        { batch: 5, size: [12, 12], cin: 16, cout: 8, k: [3, 3], stride: 2, pad: 'same' },
      ] satisfies Case[]) {
        expect(chunkPlan(5, [[5, 12, 12, 16]])).toEqual([
          [0, 2],
          [2, 2],
          [4, 1],
        ]);
        const out = c.stride === 1 ? 12 : 6;
        const x = random(5 * 12 * 12 * 16, rng);
        const w = random(c.k[0]! * c.k[1]! * 16 * 8, rng);
        const g = random(5 * out * out * 8, rng);
        registerWasmTrainingKernels({ kernels: 'wasm' });
        const [dxW, dwW] = await grads('wasm', false, c, x, w, g);
        registerWasmTrainingKernels({ kernels: 'onnxruntime', threads: 1 });
        const [dxO, dwO] = await grads('wasm', false, c, x, w, g);
        expectClose(dxO, dxW, { rtol: RTOL, what: 'dx' });
        expectClose(dwO, dwW, { rtol: RTOL, what: 'dW' });
      }
    } finally {
      setChunkElements(previous);
    }
  });
});

describe('wasm training kernels', () => {
  beforeAll(async () => {
    registerWasmTrainingKernels();
    await tf.setBackend('wasm');
  });

  for (const [ta, tb] of [
    [true, false],
    [false, true],
    [true, true],
  ] as const) {
    it(`BatchMatMul with transposeA ${ta}, transposeB ${tb} (2-D and batched) matches cpu`, async () => {
      const rng = new Rng(ta ? 1 : 2);
      for (const [batch, m, k, n] of [
        [0, 5, 7, 3],
        [2, 4, 6, 5],
      ] as const) {
        const aShape = ta ? [k, m] : [m, k];
        const bShape = tb ? [n, k] : [k, n];
        const lead = batch ? [batch] : [];
        const a = random(Math.max(batch, 1) * m * k, rng);
        const b = random(Math.max(batch, 1) * k * n, rng);
        const product = async (backend: string) => {
          await tf.setBackend(backend);
          return tf.tidy(
            () =>
              tf
                .matMul(tf.tensor(a, [...lead, ...aShape]), tf.tensor(b, [...lead, ...bShape]), ta, tb)
                .dataSync() as Float32Array,
          );
        };
        const cpu = await product('cpu');
        const wasm = await product('wasm');
        expectClose(wasm, cpu, { rtol: RTOL, what: `product ${batch}×${m}×${k}×${n}` });
      }
    });
  }

  it('registration is idempotent and leaks no tensors over repeated gradients', async () => {
    registerWasmTrainingKernels();
    await tf.setBackend('wasm');
    const x = tf.randomNormal([2, 8, 8, 3]) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 3, 4]) as tf.Tensor4D;
    const step = () =>
      tf.tidy(() =>
        tf
          .grads((a: tf.Tensor, b: tf.Tensor) =>
            tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same')),
          )([x, w])
          .map((t) => t.dataSync()),
      );
    step();
    const before = tf.memory().numTensors;
    const bytes = tf.memory().numBytes;
    step();
    step();
    expect(tf.memory().numTensors).toBe(before);
    expect(tf.memory().numBytes).toBe(bytes);
    tf.dispose([x, w]);
  });

  it('rejects dilations it does not implement, naming them', async () => {
    await tf.setBackend('wasm');
    const x = tf.zeros([1, 5, 5, 2]);
    const dy = tf.zeros([1, 5, 5, 2]);
    expect(() =>
      tf.engine().runKernel(
        'DepthwiseConv2dNativeBackpropFilter',
        { x, dy },
        {
          strides: 1,
          dilations: 2,
          pad: 'same',
          filterShape: [3, 3, 2, 1],
        },
      ),
    ).toThrow('dilations must be 1 (tfjs gradients never ask for more), found [2, 2]');
    tf.dispose([x, dy]);
  });
});

describe('depthwiseConv2dBackpropFilterImpl', () => {
  it('computes a 1×1 depthwise filter gradient as Σ x·dy per channel', () => {
    // x: 1×1×2×2, dy: same; dW[0,0,c,0] = Σ_w x[w,c]·dy[w,c]
    const x = new Float32Array([1, 2, 3, 4]);
    const dy = new Float32Array([10, 20, 30, 40]);
    const dw = depthwiseConv2dBackpropFilterImpl(x, dy, {
      batch: 1,
      inHeight: 1,
      inWidth: 2,
      channels: 2,
      multiplier: 1,
      outHeight: 1,
      outWidth: 2,
      filterHeight: 1,
      filterWidth: 1,
      strideHeight: 1,
      strideWidth: 1,
      padTop: 0,
      padLeft: 0,
    });
    expect(Array.from(dw)).toEqual([1 * 10 + 3 * 30, 2 * 20 + 4 * 40]);
  });
});
