/**
 * The conformance suite of a student network, run with vitest, beside `describeTeacher` of
 * `@compress/core/testing`. Every registry architecture runs it; a student of your own (a `Student`
 * over your own modules) gets the same checks:
 *
 * ```ts
 * import { describeStudent } from '@compress/students/testing';
 * describeStudent('my student', () => createMyStudent());
 * ```
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomImageBatch } from '@compress/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadStudent, saveCheckpoint } from './checkpoint.js';
import type { Student } from './models/student.js';
import { toOnnx } from './onnx/export.js';
import { preprocess } from './train.js';

export interface DescribeStudentOptions {
  /** Rows in the test batch. @default 3 */
  batchSize?: number;
  /**
   * Largest allowed difference between eval-mode features of a row computed alone and within the
   * batch, and between the student and its ONNX export on onnxruntime, as a fraction of the largest
   * |feature|: kernels take other code paths for other shapes and their float sums differ by an
   * amount that scales with the values. @default 1e-4
   */
  tolerance?: number;
  /** Also check the ONNX export on onnxruntime-node (skipped where it is not installed). @default true */
  onnx?: boolean;
  /** Seed of the random test images. @default 0 */
  seed?: number;
}

function relativeDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return worst / Math.max(scale, 1e-30);
}

/** Registers the student conformance tests for the student made by `factory`. */
export function describeStudent(
  name: string,
  factory: () => Student | Promise<Student>,
  options: DescribeStudentOptions = {},
): void {
  const batchSize = options.batchSize ?? 3;
  const tolerance = options.tolerance ?? 1e-4;
  describe(`Student contract: ${name}`, () => {
    let student: Student;
    let dir: string;
    const features = (mode: 'train' | 'eval', rows = batchSize, first = 0): Float32Array => {
      const { inputSize: s, channels: c } = student.spec;
      const batch = randomImageBatch(batchSize, [s, s, c], options.seed ?? 0);
      const per = s * s * c;
      const part = {
        indices: batch.indices.slice(first, first + rows),
        images: batch.images.slice(first * per, (first + rows) * per),
        shape: [rows, s, s, c] as [number, number, number, number],
      };
      student.train(mode === 'train');
      const f = tf.tidy(() => student.features(preprocess(student, part)));
      const data = f.dataSync() as Float32Array;
      expect(f.shape).toEqual([rows, student.spec.featureDim]);
      f.dispose();
      return data;
    };

    beforeAll(async () => {
      student = await factory();
      dir = await mkdtemp(join(tmpdir(), 'compress-student-'));
    });
    afterAll(async () => {
      student?.dispose();
      await rm(dir, { recursive: true, force: true });
    });

    it('describes itself: a name, a positive feature dim, an input size, and mean/std per channel', () => {
      const { name: n, featureDim, inputSize, channels, mean, std } = student.spec;
      expect(n.length).toBeGreaterThan(0);
      for (const v of [featureDim, inputSize, channels]) {
        expect(Number.isInteger(v) && v > 0).toBe(true);
      }
      expect(mean).toHaveLength(channels);
      expect(std).toHaveLength(channels);
      expect(std.every((v) => v > 0)).toBe(true);
    });

    it('maps a batch to batch × featureDim finite features in train and eval mode, without leaking tensors', () => {
      features('train'); // warm up kernels that allocate once
      const before = tf.memory().numTensors;
      for (const mode of ['train', 'eval'] as const) expect(features(mode).every(Number.isFinite)).toBe(true);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('names every parameter and buffer once; its trainable variables are its parameters', () => {
      const params = student.namedParameters().map(([n]) => n);
      const buffers = student.namedBuffers().map(([n]) => n);
      expect(new Set([...params, ...buffers]).size).toBe(params.length + buffers.length);
      expect(student.trainableVariables()).toHaveLength(params.length);
    });

    it('in eval mode embeds each row independently of its batch, and deterministically', () => {
      const whole = features('eval');
      expect(Array.from(features('eval'))).toEqual(Array.from(whole));
      const split = Math.max(1, Math.floor(batchSize / 2));
      const joined = new Float32Array(whole.length);
      joined.set(features('eval', split, 0), 0);
      joined.set(features('eval', batchSize - split, split), split * student.spec.featureDim);
      expect(relativeDifference(joined, whole)).toBeLessThanOrEqual(tolerance);
    });

    it('comes back from a checkpoint with the same eval features, bit for bit', async () => {
      const file = join(dir, 'student.ckpt');
      await saveCheckpoint(file, { student });
      const again = await loadStudent(file);
      try {
        expect(again.spec).toEqual(student.spec);
        const want = features('eval');
        const original = student;
        student = again;
        try {
          expect(Array.from(features('eval'))).toEqual(Array.from(want));
        } finally {
          student = original;
        }
      } finally {
        again.dispose();
      }
    });

    it('exports to ONNX (normalisation inside) giving its eval features on onnxruntime', async (ctx) => {
      if (options.onnx === false) return ctx.skip();
      let ort: typeof import('onnxruntime-node');
      try {
        ort = await import('onnxruntime-node');
      } catch {
        return ctx.skip();
      }
      const { inputSize: s, channels: c } = student.spec;
      const batch = randomImageBatch(batchSize, [s, s, c], options.seed ?? 0);
      const session = await ort.InferenceSession.create(toOnnx(student, { layout: 'NHWC' }));
      try {
        const feeds = {
          [session.inputNames[0]!]: new ort.Tensor('float32', batch.images, [batchSize, s, s, c]),
        };
        const out = await session.run(feeds);
        const got = out[session.outputNames[0]!]!.data as Float32Array;
        expect(relativeDifference(got, features('eval'))).toBeLessThanOrEqual(tolerance);
      } finally {
        await session.release();
      }
    });
  });
}
