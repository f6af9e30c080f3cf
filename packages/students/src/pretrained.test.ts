import { statSync } from 'node:fs';
import { knnSearch } from '@compress/cluster';
import { CompressError, type FeatureMatrix } from '@compress/core';
import { fashionMnist, type LoaderBatch, loadBatch } from '@compress/data';
import { describe, expect, it } from 'vitest';
import { loadPretrained, pretrainedCard, pretrainedPath, pretrainedStudents } from './pretrained.js';

/** The first n images of a split, as the loader batches them (NHWC, [0, 1]), with their labels. */
async function firstImages(split: 'train' | 'test', n: number): Promise<LoaderBatch> {
  return loadBatch(
    await fashionMnist({ split }),
    null,
    0,
    0,
    0,
    Int32Array.from({ length: n }, (_, i) => i),
    1,
  );
}

/** Cosine 1-NN accuracy of the test rows against the train rows. */
async function nearestNeighbourAccuracy(
  train: LoaderBatch,
  trainFeatures: FeatureMatrix,
  test: LoaderBatch,
  testFeatures: FeatureMatrix,
): Promise<number> {
  const { indices } = await knnSearch(trainFeatures, testFeatures, 1);
  let correct = 0;
  for (let q = 0; q < test.labels.length; q++)
    correct += train.labels[indices[q]!] === test.labels[q] ? 1 : 0;
  return correct / test.labels.length;
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
        const features = await student.embed(await firstImages('test', card.check.images));
        expect([features.rows, features.dim]).toEqual([card.check.images, card.dim]);
        const scale = Math.max(...card.check.features.map(Math.abs));
        let diff = 0;
        for (let i = 0; i < features.data.length; i++) {
          diff = Math.max(diff, Math.abs(features.data[i]! - card.check.features[i]!));
        }
        expect(diff).toBeLessThanOrEqual(1e-4 * scale);

        const train = await firstImages('train', card.check.knn.train);
        const test = await firstImages('test', card.check.knn.test);
        const accuracy = await nearestNeighbourAccuracy(
          train,
          await student.embed(train),
          test,
          await student.embed(test),
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
