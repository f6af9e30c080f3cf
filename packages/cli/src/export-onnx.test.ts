import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompressError, type ImageBatch } from '@compress/core';
import {
  createStudent,
  preprocess,
  type Student,
  saveCheckpoint,
  selectBackend,
  toOnnx,
} from '@compress/students';
import { OnnxTeacher } from '@compress/teacher';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from './cli-harness.test-util.js';

/** max |a − b| ≤ rtol · max |b|: relative to the features' scale (CPU kernels differ between machines). */
function expectCloseToScale(a: Float32Array, b: Float32Array, rtol = 1e-4): void {
  expect(a.length).toBe(b.length);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < b.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]!));
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  }
  expect(scale).toBeGreaterThan(0);
  expect(worst).toBeLessThanOrEqual(rtol * scale);
}

function batchFor(student: Student, n: number, seed: number): ImageBatch {
  const { inputSize: s, channels: c } = student.spec;
  const images = tf.randomUniform([n, s, s, c], 0, 1, 'float32', seed);
  const data = images.dataSync() as Float32Array;
  images.dispose();
  return { indices: Int32Array.from({ length: n }, (_, i) => i), images: data, shape: [n, s, s, c] };
}

function ownFeatures(student: Student, batch: ImageBatch): Float32Array {
  const x = preprocess(student, batch);
  const f = student.features(x);
  const data = f.dataSync() as Float32Array;
  tf.dispose([x, f]);
  return data;
}

const teacherOptions = { providers: ['cpu'] as const, threads: 1, log: false as const };

describe('an exported student as an OnnxTeacher', () => {
  let dir: string;
  beforeAll(async () => {
    await selectBackend({ backend: 'wasm', log: () => {} });
    dir = await mkdtemp(join(tmpdir(), 'compress-export-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const students = [
    ['alexnet-small', {}],
    ['resnet18-small', { channels: 3, inputSize: 32 }],
  ] as const;
  for (const [name, options] of students) {
    for (const layout of ['NCHW', 'NHWC'] as const) {
      it(`${name} ${layout}: normalisation inside with normalize 'none', and the bare network with the student's mean/std, give its own features`, async () => {
        const student = createStudent(name, { seed: 5, ...options });
        student.eval();
        const batch = batchFor(student, 5, 3);
        const want = ownFeatures(student, batch);

        const inside = await OnnxTeacher.create(toOnnx(student, { layout }), {
          ...teacherOptions,
          normalize: 'none',
        });
        expect(inside.metadata['compress.normalization']).toBe('inside');
        expect(inside.inputLayout).toBe(layout);
        expectCloseToScale((await inside.embed(batch)).data, want);
        await inside.dispose();

        const { mean, std } = student.spec;
        const bareBytes = toOnnx(student, { layout, normalization: 'none' });
        const bare = await OnnxTeacher.create(bareBytes, { ...teacherOptions, normalize: { mean, std } });
        expect(bare.metadata['compress.normalization']).toBe('none');
        expectCloseToScale((await bare.embed(batch)).data, want);
        await bare.dispose();

        // a bare network without its normalisation gives other features, and says so
        const lines: string[] = [];
        const unnormalised = await OnnxTeacher.create(bareBytes, {
          ...teacherOptions,
          normalize: 'none',
          log: (m) => lines.push(m),
        });
        expect(
          lines.some((l) => l.includes(`says it expects input normalised with { mean: [${mean.join(', ')}]`)),
        ).toBe(true);
        await unnormalised.dispose();

        // normalising for a model that normalises inside is refused
        const error = await OnnxTeacher.create(toOnnx(student, { layout }), {
          ...teacherOptions,
          normalize: { mean, std },
        }).catch((e) => e);
        expect(error).toBeInstanceOf(CompressError);
        expect((error as CompressError).code).toBe('INVALID_ARGUMENT');
        expect((error as CompressError).message).toContain('would be normalised twice');
        student.dispose();
      }, 60_000);
    }
  }

  it('`export onnx` says what the model takes', async () => {
    const student = createStudent('alexnet-small', { seed: 2 });
    const ckpt = join(dir, 'student.ckpt');
    await saveCheckpoint(ckpt, { student });
    student.dispose();
    const run = (args: string[]) => cli(['export', 'onnx', '--checkpoint', ckpt, ...args]);
    const inside = await run(['--out', join(dir, 'inside')]);
    expect(inside.code, inside.stderr).toBe(0);
    expect(`${inside.stdout}${inside.stderr}`).toContain(
      `exported alexnet-small (1024-d features) to ${join(dir, 'inside', 'student.onnx')}: it takes NCHW [B,1,28,28] pixels in [0,1]; normalisation inside (as a teacher: --teacher-normalize none)`,
    );
    const bare = await run(['--out', join(dir, 'bare'), '--normalize', 'none', '--layout', 'NHWC', '--json']);
    expect(bare.code, bare.stderr).toBe(0);
    expect(bare.stderr).toContain(
      'it takes NHWC [B,28,28,1] input normalised with mean 0.286 std 0.353: pass --teacher-normalize 0.286,0.353 when using it as a teacher',
    );
    expect(JSON.parse(bare.stdout.trim().split('\n').at(-1)!).input).toEqual({
      layout: 'NHWC',
      shape: '[B,28,28,1]',
      range: null,
      normalization: 'none',
    });
    const teacher = await OnnxTeacher.create(join(dir, 'bare', 'student.onnx'), {
      ...teacherOptions,
      normalize: { mean: [0.286], std: [0.353] },
    });
    expect(teacher.metadata['compress.normalization']).toBe('none');
    await teacher.dispose();
  }, 120_000);
});
