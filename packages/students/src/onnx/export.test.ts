import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readOnnxMetadata } from '@compress/onnx';
import { expectClose } from '@compress/vitest-config/close';
import * as tf from '@tensorflow/tfjs-core';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../backend.js';
import { createStudent } from '../models/registry.js';
import { preprocess } from '../train.js';
import { exportOnnx, toOnnx } from './export.js';

/**
 * onnxruntime-node's native kernels (MLAS, blocked for AVX2 or AVX-512, its own thread count)
 * against TensorFlow.js: float32 sums of up to 3·3·512 products per layer, over up to ~20 layers,
 * in other orders (and BatchNorm folded): measured ≤ 1e-6 of the features' scale, allowed 1e-4.
 */
const RTOL = 1e-4;

function randomizeBatchNorm(student: ReturnType<typeof createStudent>): void {
  let seed = 100;
  for (const [name, v] of student.stateDict()) {
    if (!/(bn\d|\.1)\.|running_/.test(name) || v.rank !== 1) continue;
    const isVar = name.endsWith('running_var') || name.endsWith('.weight');
    v.assign(
      isVar
        ? tf.randomUniform(v.shape, 0.5, 1.5, 'float32', seed++)
        : tf.randomNormal(v.shape, 0, 0.2, 'float32', seed++),
    );
  }
}

describe('exportOnnx', () => {
  let dir: string;
  beforeAll(async () => {
    await selectBackend({ backend: 'wasm', log: () => {} });
    dir = await mkdtemp(join(tmpdir(), 'compress-onnx-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const cases: [string, { channels?: number; inputSize?: number }][] = [
    ['alexnet-small', {}],
    ['resnet18-small', { channels: 3, inputSize: 32 }],
    ['mobilenetv2-small', {}],
    ['mobilenetv2', { inputSize: 64 }],
    ['resnet18', { inputSize: 64 }],
  ];
  for (const [name, options] of cases) {
    it(`${name} ${JSON.stringify(options)}: the bare network on onnxruntime-node matches TensorFlow.js to 1e-4`, async () => {
      const student = createStudent(name, { seed: 3, ...options });
      const { inputSize: s, channels: c } = student.spec;
      // BatchNorm statistics and affine parameters away from the trivial 0/1
      randomizeBatchNorm(student);
      const x = tf.randomNormal([3, s, s, c], 0, 1, 'float32', 7) as tf.Tensor4D;
      student.eval();
      const want = tf.tidy(() => student.features(x));
      const file = join(dir, `${name}.onnx`);
      await exportOnnx(student, file, { normalization: 'none' });
      expect(student.training).toBe(false);
      const session = await ort.InferenceSession.create(await readFile(file));
      const nchw = tf.tidy(() => tf.transpose(x, [0, 3, 1, 2]));
      const out = await session.run({
        input: new ort.Tensor('float32', nchw.dataSync() as Float32Array, [3, c, s, s]),
      });
      const got = out.features!;
      expect(got.dims).toEqual([3, student.spec.featureDim]);
      expectClose(got.data as Float32Array, want.dataSync(), { rtol: RTOL, what: 'features' });
      await session.release();
      tf.dispose([x, want, nchw]);
      student.dispose();
    });
  }

  for (const layout of ['NCHW', 'NHWC'] as const) {
    for (const [name, options] of [
      ['alexnet-small', {}],
      ['resnet18-small', { channels: 3, inputSize: 32 }],
    ] as const) {
      it(`${name}, ${layout}: normalisation inside by default, [0, 1] pixels give the features of preprocess(batch)`, async () => {
        const student = createStudent(name, { seed: 1, ...options });
        const { inputSize: s, channels: c } = student.spec;
        randomizeBatchNorm(student);
        student.eval();
        const images = tf.randomUniform([2, s, s, c], 0, 1, 'float32', 2) as tf.Tensor4D;
        const batch = {
          indices: Int32Array.of(0, 1),
          images: images.dataSync() as Float32Array,
          shape: [2, s, s, c] as [number, number, number, number],
        };
        const want = tf.tidy(() => student.features(preprocess(student, batch)));
        const bytes = toOnnx(student, { layout });
        const session = await ort.InferenceSession.create(bytes);
        const input = tf.tidy(() =>
          layout === 'NCHW' ? tf.transpose(images, [0, 3, 1, 2]) : images.clone(),
        );
        const out = await session.run({
          input: new ort.Tensor('float32', input.dataSync() as Float32Array, input.shape),
        });
        expectClose(out.features!.data as Float32Array, want.dataSync(), { rtol: RTOL, what: 'features' });
        expect(session.inputNames).toEqual(['input']);
        const meta = readOnnxMetadata(bytes);
        expect(meta['compress.normalization']).toBe('inside');
        expect(meta['compress.layout']).toBe(layout);
        expect(meta['compress.student']).toBe(name);
        expect(JSON.parse(meta['compress.onnxTeacherOptions']!)).toEqual({
          inputLayout: layout,
          normalize: 'none',
        });
        expect(JSON.parse(meta['compress.mean']!)).toEqual(student.spec.mean);
        await session.release();
        tf.dispose([images, want, input]);
        student.dispose();
      });
    }
  }

  it('records a bare network as such, and takes a fixed batch size when asked', async () => {
    const student = createStudent('alexnet-small', { seed: 1 });
    const bytes = toOnnx(student, { normalization: 'none', layout: 'NHWC', batch: 2 });
    const meta = readOnnxMetadata(bytes);
    expect(meta['compress.normalization']).toBe('none');
    expect(JSON.parse(meta['compress.onnxTeacherOptions']!)).toEqual({
      inputLayout: 'NHWC',
      normalize: { mean: [0.286], std: [0.353] },
    });
    const session = await ort.InferenceSession.create(bytes);
    expect((session.inputMetadata[0] as { shape: readonly unknown[] }).shape).toEqual([2, 28, 28, 1]);
    await session.release();
    expect(() => toOnnx(student, { normalization: 'outside' as 'none' })).toThrow(
      `exportOnnx: normalization must be 'inside' or 'none', found "outside"`,
    );
    student.dispose();
  });
});
