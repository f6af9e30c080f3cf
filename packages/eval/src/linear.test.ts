import { featureMatrix, Rng } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { FullBatchNorm, linearProbe } from './linear.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function blobs(n: number, classes: number, dim: number, noise: number, seed: number) {
  const rng = new Rng(seed);
  const centers = rng.fillNormal(new Float32Array(classes * dim));
  const labels = Array.from({ length: n }, () => rng.int(classes));
  const data = new Float32Array(n * dim);
  labels.forEach((l, i) => {
    for (let j = 0; j < dim; j++) data[i * dim + j] = centers[l * dim + j]! + rng.normal(0, noise);
  });
  return { f: featureMatrix(n, dim, data), labels };
}

describe('FullBatchNorm', () => {
  it('uses the unbiased variance of the train features, like torch.var_mean', () => {
    const n = new FullBatchNorm(featureMatrix(3, 1, new Float32Array([1, 2, 6])), 0);
    expect(n.mean[0]).toBeCloseTo(3, 6);
    expect(n.invStd[0]).toBeCloseTo(1 / Math.sqrt(7), 6);
  });
});

describe('linearProbe', () => {
  it('learns separable classes and follows the step schedule', async () => {
    const tr = blobs(600, 5, 16, 0.3, 1);
    const te = blobs(200, 5, 16, 0.3, 1);
    const events: number[] = [];
    const r = await linearProbe(tr.f, tr.labels, te.f, te.labels, {
      epochs: 6,
      milestones: [2, 4],
      batchSize: 32,
      lr: 0.1,
      onProgress: (e) => events.push(e.done),
    });
    expect(r.top1).toBeGreaterThan(0.95);
    expect(r.top5).toBe(1);
    expect(r.epochs.map((e) => e.lr)).toEqual([
      0.1, 0.1, 0.010000000000000002, 0.010000000000000002, 0.0010000000000000002, 0.0010000000000000002,
    ]);
    expect(events).toEqual([1, 2, 3, 4, 5, 6]);
    expect(r.epochs[0]!.trainLoss).toBeGreaterThan(r.epochs[5]!.trainLoss);
  });

  it('is reproducible with a seed and takes a per-epoch feature source', async () => {
    const tr = blobs(300, 3, 8, 1, 2);
    const te = blobs(100, 3, 8, 1, 3);
    const a = await linearProbe(tr.f, tr.labels, te.f, te.labels, { epochs: 2, seed: 5 });
    const seen: number[] = [];
    const b = await linearProbe(
      (epoch) => {
        seen.push(epoch);
        return tr.f;
      },
      tr.labels,
      te.f,
      te.labels,
      { epochs: 2, seed: 5 },
    );
    expect(b.epochs).toEqual(a.epochs);
    expect(seen).toEqual([0, 1]);
  });

  it('refuses bad input', async () => {
    const tr = blobs(30, 3, 4, 1, 2);
    await expect(linearProbe(tr.f, tr.labels, featureMatrix(2, 5), [0, 1])).rejects.toThrow(
      'linearProbe: train features have dim 4, test features 5; expected the same',
    );
    await expect(linearProbe(tr.f, tr.labels, tr.f, tr.labels, { epochs: 0 })).rejects.toThrow(
      'linearProbe: epochs must be a positive integer, got 0',
    );
  });
});
