import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { knnSearch } from '@compress/cluster';
import type { FeatureMatrix } from '@compress/core';
import { describeTeacher } from '@compress/core/testing';
import { describe, expect, it } from 'vitest';
import { createFashionMnistTeacher, fashionMnistTeacherPath } from './builtin.js';

const dataDir = process.env.FASHION_MNIST_DIR ?? '/usr/share/datasets/fashion-mnist';

/** The first `n` Fashion-MNIST test images (NHWC [n, 28, 28, 1] in [0, 1]) and labels. */
function testImages(n: number): { images: Float32Array; labels: Uint8Array } {
  const read = (name: string) => {
    const buf = gunzipSync(readFileSync(join(dataDir, name)));
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  };
  const images = read('t10k-images-idx3-ubyte.gz').subarray(16, 16 + n * 784);
  const labels = read('t10k-labels-idx1-ubyte.gz').subarray(8, 8 + n);
  return { images: Float32Array.from(images, (v) => v / 255), labels };
}

/** Leave-one-out 1-NN accuracy with cosine similarity: each image's best match other than itself. */
async function leaveOneOut(m: FeatureMatrix, labels: Uint8Array): Promise<number> {
  const { indices } = await knnSearch(m, m, 2, { metric: 'cosine' });
  let correct = 0;
  for (let i = 0; i < m.rows; i++) {
    const nearest = indices[2 * i] === i ? indices[2 * i + 1]! : indices[2 * i]!;
    if (labels[nearest] === labels[i]) correct++;
  }
  return correct / m.rows;
}

describe('built-in fashion-mnist teacher', () => {
  it('ships in the package and takes the ImageBatch as it is', async () => {
    expect(fashionMnistTeacherPath()).toMatch(/models[/\\]fashion-mnist-teacher\.onnx$/);
    const teacher = await createFashionMnistTeacher({ log: false });
    expect(teacher.inputLayout).toBe('NHWC');
    expect(teacher.modelImageShape).toEqual([28, 28, 1]);
    expect(teacher.dim).toBe(2048);
    expect(() => teacher.checkImageShape([32, 32, 3])).toThrow(/resize or crop the images to 28×28/);
    await teacher.dispose();
  });

  it('finds nearer neighbours of the same class than raw pixels do', async () => {
    const n = 1000;
    const { images, labels } = testImages(n);
    const teacher = await createFashionMnistTeacher({ log: false, batchSize: 500 });
    const features = await teacher.embed({
      indices: Int32Array.from({ length: n }, (_, i) => i),
      images,
      shape: [n, 28, 28, 1],
    });
    await teacher.dispose();
    const teacherAcc = await leaveOneOut(features, labels);
    const pixelAcc = await leaveOneOut({ rows: n, dim: 784, data: images }, labels);
    // Measured: 82.3% against 76.8% on these 1000 images.
    expect(teacherAcc).toBeGreaterThan(pixelAcc + 0.03);
  }, 120_000);
});

describeTeacher('built-in fashion-mnist teacher', () => createFashionMnistTeacher({ log: false }), {
  imageShape: [28, 28, 1],
  batchSize: 6,
});
