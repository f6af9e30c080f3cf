import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompressError, type ImageBatch } from '@compress/core';
import { describeTeacher, randomImageBatch } from '@compress/core/testing';
import { isCudaInstalled } from '@compress/onnx';
import { expectClose } from '@compress/vitest-config/close';
import { describe, expect, it } from 'vitest';
import { IMAGENET } from './layout.js';
import { buildOnnxModel, linearTeacherModel } from './onnx-model.test-util.js';
import { OnnxTeacher } from './onnx-teacher.js';

/** What the linear test model computes, from an NHWC batch: [mean_c(x̂)·W | max_c(x̂)] per image. */
function expected(
  batch: ImageBatch,
  weights: number[][],
  norm: { mean: readonly number[]; std: readonly number[] } | null,
  grayToRgb = false,
): Float32Array {
  const [b, h, w, c] = batch.shape;
  const cm = grayToRgb ? 3 : c;
  const d = weights[0]!.length;
  const out = new Float32Array(b * (d + cm));
  for (let i = 0; i < b; i++) {
    const mean = new Array(cm).fill(0);
    const max = new Array(cm).fill(Number.NEGATIVE_INFINITY);
    for (let p = 0; p < h * w; p++) {
      for (let k = 0; k < cm; k++) {
        const raw = batch.images[(i * h * w + p) * c + (grayToRgb ? 0 : k)]!;
        const v = norm ? (raw - norm.mean[k]!) / norm.std[k]! : raw;
        mean[k] += v / (h * w);
        max[k] = Math.max(max[k], v);
      }
    }
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < cm; k++) s += mean[k] * weights[k]![j]!;
      out[i * (d + cm) + j] = s;
    }
    for (let k = 0; k < cm; k++) out[i * (d + cm) + d + k] = max[k];
  }
  return out;
}

/**
 * The test model is a mean over pixels, a 3-term product and a max: onnxruntime's float32 kernels
 * (AVX2 or AVX-512, any thread count) stay within ~1e-6 of the features' scale of the float64 value.
 */
const RTOL = 1e-5;

async function thrown(p: Promise<unknown>): Promise<CompressError> {
  try {
    await p;
  } catch (error) {
    expect(error).toBeInstanceOf(CompressError);
    return error as CompressError;
  }
  throw new Error('expected a CompressError');
}

const quiet = { log: false as const, providers: ['cpu'] as const };

describe('OnnxTeacher', () => {
  it('converts NHWC to NCHW, normalises (ImageNet) and embeds like the model', async () => {
    const { bytes, weights } = linearTeacherModel({ layout: 'NCHW', channels: 3, size: 8, dim: 4 });
    const teacher = await OnnxTeacher.create(bytes, { ...quiet, normalize: 'imagenet' });
    expect(teacher.inputLayout).toBe('NCHW');
    expect(teacher.dim).toBe(7);
    expect(teacher.modelImageShape).toEqual([8, 8, 3]);
    const batch = randomImageBatch(5, [8, 8, 3], 1);
    const f = await teacher.embed(batch);
    expect(f.rows).toBe(5);
    expectClose(f.data, expected(batch, weights, IMAGENET), { rtol: RTOL });
    await teacher.dispose();
  });

  it('feeds an NHWC model as it is (layout inferred), with custom per-channel statistics', async () => {
    const { bytes, weights } = linearTeacherModel({ layout: 'NHWC', channels: 3, size: 6, dim: 2 });
    const batch = randomImageBatch(4, [6, 6, 3], 2);
    const plain = await OnnxTeacher.create(bytes, quiet);
    expect(plain.inputLayout).toBe('NHWC');
    expectClose((await plain.embed(batch)).data, expected(batch, weights, null), { rtol: RTOL });
    const norm = { mean: [0.1, 0.2, 0.3], std: [0.5, 0.25, 2] };
    const normed = await OnnxTeacher.create(bytes, { ...quiet, normalize: norm });
    expectClose((await normed.embed(batch)).data, expected(batch, weights, norm), { rtol: RTOL });
    expect(normed.fingerprint).not.toBe(plain.fingerprint);
    await plain.dispose();
    await normed.dispose();
  });

  it('repeats a gray channel for a 3-channel model when channels says so, and refuses it otherwise', async () => {
    const { bytes, weights } = linearTeacherModel({ layout: 'NCHW', channels: 3, size: 8 });
    const batch = randomImageBatch(3, [8, 8, 1], 3);
    const gray = await OnnxTeacher.create(bytes, {
      ...quiet,
      channels: 'gray-to-rgb',
      normalize: 'imagenet',
    });
    expectClose((await gray.embed(batch)).data, expected(batch, weights, IMAGENET, true), { rtol: RTOL });
    const strict = await OnnxTeacher.create(bytes, quiet);
    const error = await thrown(strict.embed(batch));
    expect(error.code).toBe('SHAPE_MISMATCH');
    expect(error.message).toContain("the model's input 'images' is NCHW [batch, 3, 8, 8] (H×W×C 8×8×3)");
    expect(error.message).toContain('the data is NHWC images of 8×8×1');
    expect(error.message).toContain("channels: 'gray-to-rgb'");
    await gray.dispose();
    await strict.dispose();
  });

  it('says before running that the image size does not fit, naming both shapes', async () => {
    const teacher = await OnnxTeacher.create(linearTeacherModel({ size: 224 }).bytes, quiet);
    expect(() => teacher.checkImageShape([28, 28, 3])).toThrow(
      "OnnxTeacher <bytes>: the model's input 'images' is NCHW [batch, 3, 224, 224] (H×W×C 224×224×3), the data is NHWC images of 28×28×3: resize or crop the images to 224×224",
    );
    expect(() => teacher.checkImageShape([224, 224, 3])).not.toThrow();
    await teacher.dispose();
  });

  it('accepts any size where the model leaves it free', async () => {
    const teacher = await OnnxTeacher.create(linearTeacherModel({ size: 'side' }).bytes, quiet);
    expect(teacher.modelImageShape).toEqual([null, null, 3]);
    expect((await teacher.embed(randomImageBatch(2, [5, 9, 3]))).rows).toBe(2);
    await teacher.dispose();
  });

  it('squeezes [B, D, 1, 1] outputs and probes a symbolic feature size', async () => {
    const { bytes, weights } = linearTeacherModel({ keepDims: true, symbolicOutput: true, dim: 5 });
    const teacher = await OnnxTeacher.create(bytes, quiet);
    expect(teacher.dim).toBe(8);
    const batch = randomImageBatch(3, [8, 8, 3], 4);
    expectClose((await teacher.embed(batch)).data, expected(batch, weights, null), { rtol: RTOL });
    await teacher.dispose();
  });

  it('splits batches larger than batchSize and gives the same rows', async () => {
    const { bytes } = linearTeacherModel({});
    const batch = randomImageBatch(11, [8, 8, 3], 5);
    const small = await OnnxTeacher.create(bytes, { ...quiet, batchSize: 3, normalize: 'imagenet' });
    const large = await OnnxTeacher.create(bytes, { ...quiet, batchSize: 64, normalize: 'imagenet' });
    expect(Array.from((await small.embed(batch)).data)).toEqual(Array.from((await large.embed(batch)).data));
    expect(small.fingerprint).toBe(large.fingerprint); // batching does not change the features
    await small.dispose();
    await large.dispose();
  });

  it('serves concurrent embeds correctly', async () => {
    const { bytes, weights } = linearTeacherModel({});
    const teacher = await OnnxTeacher.create(bytes, { ...quiet, normalize: 'imagenet', batchSize: 2 });
    const batches = [1, 2, 3, 4].map((s) => randomImageBatch(5, [8, 8, 3], s));
    const results = await Promise.all(batches.map((b) => teacher.embed(b)));
    results.forEach((f, i) => {
      expectClose(f.data, expected(batches[i]!, weights, IMAGENET), { rtol: RTOL });
    });
    await teacher.dispose();
  });

  it('refuses NaN or Inf in its output, naming the dataset indices', async () => {
    const teacher = await OnnxTeacher.create(linearTeacherModel({}).bytes, quiet);
    const batch = randomImageBatch(4, [8, 8, 3], 6, 100);
    batch.images[2 * 8 * 8 * 3 + 5] = Number.NaN;
    const error = await thrown(teacher.embed(batch));
    expect(error.code).toBe('NON_FINITE');
    expect(error.message).toContain('OnnxTeacher <bytes> output: found NaN at dataset index 102');
    await teacher.dispose();
  });

  it('names a missing or invalid model file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'compress-teacher-'));
    const missing = join(dir, 'missing.onnx');
    const e1 = await thrown(OnnxTeacher.create(missing, quiet));
    expect(e1.code).toBe('NOT_FOUND');
    expect(e1.message).toBe(`OnnxTeacher: cannot read the ONNX model ${missing}: no such file or directory`);
    const garbage = join(dir, 'garbage.onnx');
    await writeFile(garbage, 'not a model');
    const e2 = await thrown(OnnxTeacher.create(garbage, quiet));
    expect(e2.code).toBe('CORRUPT_INPUT');
    expect(e2.message).toContain(`OnnxTeacher: cannot load ${garbage} as an ONNX model:`);
  });

  it('refuses models it cannot feed and unknown outputs', async () => {
    const twoInputs = buildOnnxModel({
      inputs: [
        { name: 'a', shape: ['n', 3, 4, 4] },
        { name: 'b', shape: ['n', 3, 4, 4] },
      ],
      outputs: [{ name: 'sum', shape: ['n', 3, 4, 4] }],
      nodes: [{ op: 'Add', inputs: ['a', 'b'], outputs: ['sum'] }],
    });
    const e1 = await thrown(OnnxTeacher.create(twoInputs, quiet));
    expect(e1.code).toBe('UNSUPPORTED');
    expect(e1.message).toBe(
      'OnnxTeacher <bytes>: the model takes 2 inputs (a, b), expected one image tensor',
    );
    const e2 = await thrown(
      OnnxTeacher.create(linearTeacherModel({}).bytes, { ...quiet, outputName: 'logits' }),
    );
    expect(e2.code).toBe('INVALID_ARGUMENT');
    expect(e2.message).toBe(
      "OnnxTeacher <bytes>: outputName 'logits' is not an output of the model; its outputs are: features",
    );
    const spatial = buildOnnxModel({
      inputs: [{ name: 'x', shape: ['n', 3, 4, 4] }],
      outputs: [{ name: 'y', shape: ['n', 3, 4, 4] }],
      nodes: [{ op: 'Relu', inputs: ['x'], outputs: ['y'] }],
    });
    const e3 = await thrown(OnnxTeacher.create(spatial, quiet));
    expect(e3.code).toBe('SHAPE_MISMATCH');
    expect(e3.message).toBe(
      "OnnxTeacher <bytes>: output 'y' has shape [1, 3, 4, 4] for one image, expected [1, D] or [1, D, 1, 1]; export the pooled features, or pick another output with outputName",
    );
  });

  it('checks its options', async () => {
    const { bytes } = linearTeacherModel({});
    const e1 = await thrown(OnnxTeacher.create(bytes, { ...quiet, batchSize: 0 }));
    expect(e1.message).toBe('OnnxTeacher: batchSize must be an integer ≥ 1, got 0');
    const e2 = await thrown(
      OnnxTeacher.create(bytes, { ...quiet, normalize: { mean: [0, 0], std: [1, 1] } }),
    );
    expect(e2.message).toBe(
      "OnnxTeacher: normalize.mean has 2 values, expected 1 or 3 (one per channel of the model's input)",
    );
    const teacher = await OnnxTeacher.create(bytes, quiet);
    const e3 = await thrown(teacher.embed({ ...randomImageBatch(2, [8, 8, 3]), indices: new Int32Array(3) }));
    expect(e3.message).toBe('OnnxTeacher <bytes>: batch.indices has 3 entries, expected B = 2');
    await teacher.dispose();
  });

  it.skipIf(isCudaInstalled())(
    "uses the CPU under 'auto' where CUDA is not installed, says so, and refuses an explicit CUDA request",
    async () => {
      const { bytes } = linearTeacherModel({});
      const lines: string[] = [];
      const teacher = await OnnxTeacher.create(bytes, { log: (l) => lines.push(l) });
      expect(teacher.provider).toBe('cpu');
      expect(lines).toEqual([
        "OnnxTeacher <bytes>: CPU (providers 'auto': onnxruntime-node's CUDA provider is not installed)",
      ]);
      await teacher.dispose();
      const error = await thrown(OnnxTeacher.create(bytes, { log: false, providers: ['cuda', 'cpu'] }));
      expect(error.code).toBe('BACKEND_UNAVAILABLE');
      expect(error.message).toContain(
        `providers ["cuda","cpu"] asks for CUDA, but onnxruntime-node's CUDA provider is not installed`,
      );
      expect(error.message).toContain('ONNXRUNTIME_NODE_INSTALL=1 node ');
      expect(error.message).toContain('--onnxruntime-node-install');
    },
  );
});

describeTeacher(
  'OnnxTeacher (linear test model, NCHW + ImageNet normalisation)',
  () =>
    OnnxTeacher.create(linearTeacherModel({ size: 16 }).bytes, {
      ...quiet,
      normalize: 'imagenet',
      batchSize: 3,
    }),
  { imageShape: [16, 16, 3], batchSize: 7, tolerance: 1e-5 },
);
