import { statSync } from 'node:fs';
import { CompressError, type ImageBatch } from '@compress/core';
import { fashionMnist } from '@compress/data';
import { describe, expect, it } from 'vitest';
import { loadPretrained, pretrainedCard, pretrainedPath, pretrainedStudents } from './pretrained.js';

/** The first n images of a split as an ImageBatch (NHWC, [0, 1]) and their labels. */
async function firstImages(
  split: 'train' | 'test',
  n: number,
): Promise<{ batch: ImageBatch; labels: Int32Array }> {
  const dataset = await fashionMnist({ split });
  const images = new Float32Array(n * 784);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const { image, label } = dataset.get(i);
    for (let j = 0; j < 784; j++) images[i * 784 + j] = image.data[j]! / 255;
    labels[i] = label;
  }
  return {
    batch: { indices: Int32Array.from({ length: n }, (_, i) => i), images, shape: [n, 28, 28, 1] },
    labels,
  };
}

/** Cosine 1-NN accuracy, written plainly (an independent check of what the release recorded). */
function nearestNeighbourAccuracy(
  base: Float32Array,
  baseLabels: Int32Array,
  queries: Float32Array,
  queryLabels: Int32Array,
  dim: number,
): number {
  const normalise = (m: Float32Array) => {
    const out = new Float32Array(m.length);
    for (let r = 0; r < m.length / dim; r++) {
      let s = 0;
      for (let j = 0; j < dim; j++) s += m[r * dim + j]! ** 2;
      const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
      for (let j = 0; j < dim; j++) out[r * dim + j] = m[r * dim + j]! * inv;
    }
    return out;
  };
  const b = normalise(base);
  const q = normalise(queries);
  let correct = 0;
  for (let i = 0; i < queryLabels.length; i++) {
    let best = -Infinity;
    let label = -1;
    for (let r = 0; r < baseLabels.length; r++) {
      let s = 0;
      for (let j = 0; j < dim; j++) s += q[i * dim + j]! * b[r * dim + j]!;
      if (s > best) {
        best = s;
        label = baseLabels[r]!;
      }
    }
    correct += label === queryLabels[i] ? 1 : 0;
  }
  return correct / queryLabels.length;
}

describe('released students', () => {
  for (const name of pretrainedStudents) {
    it(`${name}: under 5 MiB, and as a Teacher computes what its card says`, async () => {
      const card = pretrainedCard(name);
      expect(card.name).toBe(name);
      const bytes = statSync(pretrainedPath(name)).size;
      expect(bytes).toBe(card.bytes);
      expect(bytes).toBeLessThan(5 * 1024 * 1024);
      // the whole Table 1 story of this student: well above its random init, near its teacher
      expect(card.numbers.student.nn).toBeGreaterThan(card.numbers.randomInit.nn);
      expect(card.numbers.student.ca).toBeGreaterThan(card.numbers.randomInit.ca);

      const student = await loadPretrained(name, { providers: ['cpu'], threads: 1 }); // checks the SHA-256
      try {
        expect(student.dim).toBe(card.dim);
        const { batch } = await firstImages('test', card.check.images);
        const features = await student.embed(batch);
        expect([features.rows, features.dim]).toEqual([card.check.images, card.dim]);
        const scale = Math.max(...card.check.features.map(Math.abs));
        let diff = 0;
        for (let i = 0; i < features.data.length; i++) {
          diff = Math.max(diff, Math.abs(features.data[i]! - card.check.features[i]!));
        }
        expect(diff).toBeLessThanOrEqual(1e-4 * scale);

        const train = await firstImages('train', card.check.knn.train);
        const test = await firstImages('test', card.check.knn.test);
        const accuracy = nearestNeighbourAccuracy(
          (await student.embed(train.batch)).data,
          train.labels,
          (await student.embed(test.batch)).data,
          test.labels,
          card.dim,
        );
        // a float sum on another CPU may flip a near tie: one query in a hundred at most
        expect(Math.abs(accuracy - card.check.knn.accuracy)).toBeLessThanOrEqual(0.01);
      } finally {
        await student.dispose();
      }
    }, 60_000);
  }

  it('refuses an unknown name, listing the released ones', async () => {
    await expect(loadPretrained('fashion-mnist/momentun')).rejects.toThrow(CompressError);
    expect(() => pretrainedCard('imagenet/momentum')).toThrow(/expected one of: fashion-mnist\/momentum/);
  });
});
