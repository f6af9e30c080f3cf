/**
 * Conformance suites for the contracts in this package, run with vitest. Every implementation of
 * `Teacher` in compress runs {@link describeTeacher}; a custom teacher gets the same checks:
 *
 * ```ts
 * import { describeTeacher } from '@compress/core/testing';
 * describeTeacher('my teacher', () => createMyTeacher(), { imageShape: [28, 28, 1] });
 * ```
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from './rng.js';
import type { ImageBatch, Teacher } from './types.js';

export interface DescribeTeacherOptions {
  /** `[H, W, C]` of the images the teacher takes. */
  imageShape: readonly [number, number, number];
  /** Rows in the test batch. @default 4 */
  batchSize?: number;
  /**
   * Largest allowed difference between a row embedded alone and within a batch, as a fraction of the
   * largest |feature| of the batch: kernels (onnxruntime's among them) may pick other code paths
   * for other batch sizes, and their float sums differ by an amount that scales with the features.
   * 0 asks for the same bits. @default 1e-4
   */
  tolerance?: number;
  /** Seed of the random test images. @default 0 */
  seed?: number;
}

/** A batch of random images in [0, 1] with indices `first…first+B−1`. */
export function randomImageBatch(
  batchSize: number,
  shape: readonly [number, number, number],
  seed = 0,
  first = 0,
): ImageBatch {
  const [h, w, c] = shape;
  const rng = new Rng(seed);
  const images = rng.fillUniform(new Float32Array(batchSize * h * w * c));
  const indices = new Int32Array(batchSize).map((_, i) => first + i);
  return { indices, images, shape: [batchSize, h, w, c] };
}

function sliceBatch(batch: ImageBatch, start: number, end: number): ImageBatch {
  const [, h, w, c] = batch.shape;
  const per = h * w * c;
  return {
    indices: batch.indices.slice(start, end),
    images: batch.images.slice(start * per, end * per),
    shape: [end - start, h, w, c],
  };
}

/** Registers the Teacher conformance tests for the teacher made by `factory`. */
export function describeTeacher(
  name: string,
  factory: () => Teacher | Promise<Teacher>,
  options: DescribeTeacherOptions,
): void {
  const batchSize = options.batchSize ?? 4;
  const tolerance = options.tolerance ?? 1e-4;
  describe(`Teacher contract: ${name}`, () => {
    let teacher: Teacher;
    const batch = randomImageBatch(batchSize, options.imageShape, options.seed ?? 0);
    beforeAll(async () => {
      teacher = await factory();
    });
    afterAll(async () => {
      await teacher?.dispose();
    });

    it('has a positive integer dim', () => {
      expect(Number.isInteger(teacher.dim)).toBe(true);
      expect(teacher.dim).toBeGreaterThan(0);
    });

    it('embeds a batch into rows × dim finite features', async () => {
      const f = await teacher.embed(batch);
      expect(f.rows).toBe(batchSize);
      expect(f.dim).toBe(teacher.dim);
      expect(f.data).toBeInstanceOf(Float32Array);
      expect(f.data.length).toBe(batchSize * teacher.dim);
      expect(f.data.every(Number.isFinite)).toBe(true);
    });

    it('is deterministic and embeds each row independently of its batch', async () => {
      const whole = await teacher.embed(batch);
      const again = await teacher.embed(batch);
      expect(Array.from(again.data)).toEqual(Array.from(whole.data));
      const split = Math.max(1, Math.floor(batchSize / 2));
      const head = await teacher.embed(sliceBatch(batch, 0, split));
      const tail = await teacher.embed(sliceBatch(batch, split, batchSize));
      const joined = new Float32Array(whole.data.length);
      joined.set(head.data, 0);
      joined.set(tail.data, head.data.length);
      let worst = 0;
      let scale = 0;
      for (let i = 0; i < joined.length; i++) {
        worst = Math.max(worst, Math.abs(joined[i]! - whole.data[i]!));
        scale = Math.max(scale, Math.abs(whole.data[i]!));
      }
      expect(worst, `largest difference, features up to ${scale}`).toBeLessThanOrEqual(tolerance * scale);
    });
  });
}
