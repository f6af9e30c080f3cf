import { CompressError, Rng } from '@compress/core';
import {
  createSession,
  nchwcBlockSize,
  type OrtSession,
  requireOnnxRuntime,
  requireOnnxRuntimeNative,
} from '@compress/onnx';
import { expectClose, relativeDifference } from '@compress/vitest-config/close';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../backend.js';
import { AdaptiveAvgPool } from '../models/alexnet.js';
import { InvertedResidual } from '../models/mobilenetv2.js';
import { createStudent } from '../models/registry.js';
import { BasicBlock, Bottleneck } from '../models/resnet.js';
import { Act } from '../nn/activation.js';
import { BatchNorm2d, ConvBN } from '../nn/batchnorm.js';
import { Conv2d, type ConvOptions } from '../nn/conv.js';
import type { GraphBuilder } from '../nn/graph.js';
import { Flatten, GlobalAvgPool, Linear, MaxPool2d } from '../nn/layers.js';
import { Module, Sequential } from '../nn/module.js';
import { buildGradGraph, gradName, nextName } from './grad-graph.js';

/**
 * onnxruntime's kernels against TensorFlow.js's plain `cpu` kernels for the same float32 forward
 * and backward passes, sums taken in other orders: measured ≤ 4.3e-6 of each compared tensor's
 * scale on the layer cases and ≤ 1.1e-6 on alexnet-small; allowed 1e-4. (Against the `wasm`
 * backend the layer cases agree as closely. One run of this file's alexnet-small case on `wasm` saw
 * its gradients differ by 2–9% from fc6 down; alexnet-small's gradients on `wasm` through
 * `selectBackend` — the training path, with either kernel set — agree with `cpu` to ≤ 1.1e-6 on
 * random inputs, so the difference is not reproduced there: open.)
 */
const RTOL = 1e-4;

/** onnxruntime's NCHWc block on this CPU (8 with AVX2, 16 with AVX-512). */
const nchwcBlock = () => nchwcBlockSize(requireOnnxRuntimeNative({ user: 'test', otherwise: '' }));

/** BatchNorm affine parameters and running statistics away from the trivial 1/0. */
function randomizeBatchNorm(m: Module, seed = { next: 100 }): void {
  if (m instanceof BatchNorm2d) {
    m.weight.assign(tf.randomUniform(m.weight.shape, 0.5, 1.5, 'float32', seed.next++));
    m.bias.assign(tf.randomNormal(m.bias.shape, 0, 0.2, 'float32', seed.next++));
    m.runningMean.assign(tf.randomNormal(m.runningMean.shape, 0, 0.2, 'float32', seed.next++));
    m.runningVar.assign(tf.randomUniform(m.runningVar.shape, 0.5, 1.5, 'float32', seed.next++));
  }
  for (const [, child] of m.children()) randomizeBatchNorm(child, seed);
}

/**
 * Runs the module's training graph on onnxruntime-node and compares the features, every
 * parameter's gradient of Σ(features · upstream) and the new running statistics with
 * TensorFlow.js (tf.variableGrads, the module in train mode). Returns the worst relative difference.
 */
async function compare(module: Module, inputShape: number[], scaleX = 1, nchwcBlock = 1): Promise<number> {
  const ort = await requireOnnxRuntime('test');
  randomizeBatchNorm(module);
  const { model, parameters, buffers, featureShape } = buildGradGraph(module, inputShape, { nchwcBlock });
  const feeds: Record<string, ReturnType<typeof tensor>> = {};
  const tensor = (data: Float32Array, dims: readonly number[]) =>
    new ort.Tensor('float32', Float32Array.from(data), dims);
  // the inputs as they are before the tfjs forward updates the running statistics
  for (const [name, v] of [...module.namedParameters(), ...module.namedBuffers()]) {
    feeds[name] = tensor(v.dataSync() as Float32Array, v.shape);
  }
  const x = tf.randomNormal(inputShape, 0, scaleX, 'float32', 11);
  const upstream = tf.randomNormal(featureShape, 0, 1, 'float32', 12);
  feeds.x = tensor(x.dataSync() as Float32Array, inputShape);
  feeds.dfeatures = tensor(upstream.dataSync() as Float32Array, featureShape);

  let features: tf.Tensor | null = null;
  const { value, grads } = tf.variableGrads(() => {
    const y = module.forward(x);
    features = tf.keep(y);
    return tf.sum(tf.mul(y, upstream)) as tf.Scalar;
  }, module.trainableVariables());

  const session: OrtSession = await createSession(model, { threads: 1, user: 'test' });
  const out = await session.run(feeds);
  await session.release();
  let worst = 0;
  const check = (got: unknown, want: tf.Tensor, what: string) => {
    const w = want.dataSync() as Float32Array;
    const g = got as Float32Array;
    expectClose(g, w, { rtol: RTOL, what });
    worst = Math.max(worst, relativeDifference(g, w));
  };
  check(out.features?.data, features as unknown as tf.Tensor, 'features');
  const variables = new Map(module.namedParameters());
  for (const { name } of parameters) {
    const want = grads[(variables.get(name) as tf.Variable).name] as tf.Tensor;
    check(out[gradName(name)]?.data, want, `d ${name}`);
  }
  const stats = new Map(module.namedBuffers());
  for (const { name } of buffers) check(out[nextName(name)]?.data, stats.get(name) as tf.Variable, name);
  tf.dispose([x, upstream, value, features as unknown as tf.Tensor, ...Object.values(grads)]);
  return worst;
}

const rng = () => new Rng(5);
const conv = (cin: number, cout: number, o: ConvOptions) => new Conv2d(cin, cout, o, rng());

describe('buildGradGraph (onnxruntime) against TensorFlow.js gradients', () => {
  beforeAll(async () => {
    // the plain reference kernels (see the note on RTOL)
    await selectBackend({ backend: 'cpu', log: () => {} });
  });

  const layers: [string, () => Module, number[], number?][] = [
    [
      'Conv2d 3×3 stride 1 padding 1 with bias',
      () => conv(3, 5, { kernel: 3, padding: 1, bias: true }),
      [2, 7, 7, 3],
    ],
    ['Conv2d 3×3 stride 2 padding 1', () => conv(3, 5, { kernel: 3, stride: 2, padding: 1 }), [2, 8, 8, 3]],
    ['Conv2d 1×1 stride 2', () => conv(4, 6, { kernel: 1, stride: 2 }), [2, 7, 7, 4]],
    [
      'Conv2d 5×5 stride 3 padding 2 with bias',
      () => conv(2, 3, { kernel: 5, stride: 3, padding: 2, bias: true }),
      [2, 10, 10, 2],
    ],
    ['depthwise Conv2d 3×3 stride 1', () => conv(4, 4, { kernel: 3, padding: 1, groups: 4 }), [2, 6, 6, 4]],
    [
      'depthwise Conv2d 3×3 stride 2 with bias',
      () => conv(4, 4, { kernel: 3, stride: 2, padding: 1, groups: 4, bias: true }),
      [2, 7, 7, 4],
    ],
    ['ReLU', () => new Sequential([conv(2, 4, { kernel: 3, bias: true }), new Act('relu')]), [2, 6, 6, 2]],
    [
      'ReLU6',
      () => new Sequential([conv(2, 4, { kernel: 3, bias: true }), new Act('relu6')]),
      [2, 6, 6, 2],
      8,
    ],
    [
      'MaxPool2d 3/2',
      () => new Sequential([conv(2, 3, { kernel: 1, bias: true }), new MaxPool2d(3, 2)]),
      [2, 9, 9, 2],
    ],
    [
      'MaxPool2d 3/2 padding 1',
      () => new Sequential([conv(2, 3, { kernel: 1, bias: true }), new MaxPool2d(3, 2, 1)]),
      [2, 8, 8, 2],
    ],
    [
      'Flatten + Linear',
      () => new Sequential([conv(2, 3, { kernel: 3, bias: true }), new Flatten(), new Linear(27, 5, rng())]),
      [4, 5, 5, 2],
    ],
    [
      'AdaptiveAvgPool 2×2',
      () => new Sequential([conv(2, 3, { kernel: 1, bias: true }), new AdaptiveAvgPool(2)]),
      [2, 6, 6, 2],
    ],
    [
      'GlobalAvgPool',
      () => new Sequential([conv(2, 3, { kernel: 3, bias: true }), new GlobalAvgPool()]),
      [2, 6, 6, 2],
    ],
    [
      'BatchNorm2d (train)',
      () => new Sequential([conv(2, 3, { kernel: 3 }), new BatchNorm2d(3)]),
      [3, 5, 5, 2],
    ],
    [
      'ConvBN depthwise stride 2 + ReLU6',
      () => new ConvBN(4, 4, { kernel: 3, stride: 2, padding: 1, groups: 4 }, 'relu6', rng()),
      [3, 7, 7, 4],
      4,
    ],
    ['BasicBlock with downsample', () => new BasicBlock(3, 6, 2, rng()), [2, 8, 8, 3]],
    ['BasicBlock, identity shortcut', () => new BasicBlock(4, 4, 1, rng()), [2, 5, 5, 4]],
    ['Bottleneck with downsample', () => new Bottleneck(4, 2, 2, rng()), [2, 6, 6, 4]],
    ['InvertedResidual with residual', () => new InvertedResidual(4, 4, 1, 6, rng()), [2, 5, 5, 4]],
    ['InvertedResidual stride 2, expand 1', () => new InvertedResidual(4, 8, 2, 1, rng()), [2, 6, 6, 4]],
  ];
  for (const [what, make, shape, scaleX] of layers) {
    it(`${what}: features, parameter gradients and running statistics within 1e-4`, async () => {
      const m = make();
      const worst = await compare(m, shape, scaleX);
      expect(worst).toBeLessThanOrEqual(RTOL);
      m.dispose();
    });
    it(`${what}, on onnxruntime's NCHWc kernels: the same within 1e-4`, async () => {
      const m = make();
      const worst = await compare(m, shape, scaleX, nchwcBlock());
      expect(worst).toBeLessThanOrEqual(RTOL);
      m.dispose();
    });
  }

  it('alexnet-small (width 0.25, 28×28×1, batch 8): features and every parameter gradient within 1e-4', async () => {
    const student = createStudent('alexnet-small', { seed: 3, width: 0.25 });
    expect(student.spec.inputSize).toBe(28);
    expect(student.spec.channels).toBe(1);
    const worst = await compare(student, [8, 28, 28, 1]);
    expect(worst).toBeLessThanOrEqual(RTOL);
    student.dispose();
  }, 120_000);

  it("alexnet-small on onnxruntime's NCHWc kernels: the same within 1e-4", async () => {
    const student = createStudent('alexnet-small', { seed: 3, width: 0.25 });
    expect(await compare(student, [8, 28, 28, 1], 1, nchwcBlock())).toBeLessThanOrEqual(RTOL);
    student.dispose();
  }, 120_000);

  it('refuses a layer kind it does not know, naming the layer', () => {
    class Square extends Module {
      forward(x: tf.Tensor): tf.Tensor {
        return tf.square(x);
      }
      toGraph(g: GraphBuilder, input: string): string {
        return g.node('Mul', [input, input]);
      }
    }
    const m = new Sequential([conv(1, 2, { kernel: 1 }), new Square()]);
    expect(() => buildGradGraph(m, [2, 3, 3, 1])).toThrow(CompressError);
    expect(() => buildGradGraph(m, [2, 3, 3, 1])).toThrow(/layer 1 \(Square\)/);
    m.dispose();
  });

  it('BatchNorm2d in eval mode: the running statistics normalise and stay; gradients within 1e-4', async () => {
    const m = new Sequential([conv(2, 3, { kernel: 3 }), new BatchNorm2d(3)]);
    m.eval();
    expect(await compare(m, [3, 5, 5, 2])).toBeLessThanOrEqual(RTOL);
    expect(await compare(m, [3, 5, 5, 2], 1, nchwcBlock())).toBeLessThanOrEqual(RTOL);
    m.dispose();
  });
});
