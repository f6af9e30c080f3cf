import { readFileSync } from 'node:fs';
import { knnSearch } from '@compress/cluster';
import { featureMatrix, l2NormalizeRows } from '@compress/core';
import { goldenPath } from '@compress/vitest-config';
import { describe, expect, it } from 'vitest';
import { knnAccuracy, knnAccuracyOfNeighbors, voteNeighbors } from './knn.js';

interface KnnGolden {
  tau: number;
  k: number;
  num_classes: number;
  train_features: number[][];
  train_labels: number[];
  query_features: number[][];
  query_labels: number[];
  neighbors: { indices: number[][]; similarities: number[][] };
  knn1: { predictions: number[]; correct: number; accuracy: number };
  knn20_majority: {
    votes: number[][];
    tie: boolean[];
    predictions: number[];
    correct: number;
    accuracy: number;
  };
  knn20_weighted: { scores: number[][]; predictions: number[]; correct: number; accuracy: number };
}

const golden = JSON.parse(readFileSync(goldenPath('eval.json'), 'utf8')).knn as KnnGolden;
const matrix = (rows: number[][]) =>
  featureMatrix(rows.length, rows[0]!.length, Float32Array.from(rows.flat()));
const train = matrix(golden.train_features);
const query = matrix(golden.query_features);

describe('k-NN votes (golden)', () => {
  const neighbors = Int32Array.from(golden.neighbors.indices.flat());
  const sims = Float32Array.from(golden.neighbors.similarities.flat());
  const labels = Int32Array.from(golden.train_labels);

  it('20-NN majority: votes, ties and the deterministic tie rule', () => {
    const v = voteNeighbors(neighbors, sims, golden.k, labels, golden.num_classes, 'majority');
    expect(Array.from(v.scores)).toEqual(golden.knn20_majority.votes.flat());
    expect(Array.from(v.tie, Boolean)).toEqual(golden.knn20_majority.tie);
    expect(Array.from(v.predictions)).toEqual(golden.knn20_majority.predictions);
  });

  it('20-NN weighted by exp(sim / 0.07)', () => {
    const v = voteNeighbors(neighbors, sims, golden.k, labels, golden.num_classes, 'weighted', golden.tau);
    const want = golden.knn20_weighted.scores.flat();
    const scale = Math.max(...want.map(Math.abs));
    for (const [i, w] of want.entries()) {
      expect(Math.abs(v.scores[i]! - w)).toBeLessThanOrEqual(1e-5 * Math.abs(w) + 1e-6 * scale);
    }
    expect(Array.from(v.predictions)).toEqual(golden.knn20_weighted.predictions);
  });
});

describe('knnAccuracyOfNeighbors', () => {
  it("gives knnAccuracy's results from the top-20 found elsewhere, for k = 1 and k = 20", async () => {
    const top = await knnSearch(l2NormalizeRows(train), l2NormalizeRows(query), 20, { metric: 'ip' });
    for (const options of [{ k: 1 }, { k: 20, vote: 'weighted' as const }, { k: 20 }]) {
      const want = await knnAccuracy(train, golden.train_labels, query, golden.query_labels, options);
      expect(knnAccuracyOfNeighbors(top, golden.train_labels, golden.query_labels, options)).toEqual(want);
    }
    expect(() => knnAccuracyOfNeighbors(top, golden.train_labels, golden.query_labels, { k: 21 })).toThrow(
      /k must be an integer in \[1, 20\]/,
    );
  });
});

describe('knnAccuracy (golden, end to end)', () => {
  it('1-NN', async () => {
    const r = await knnAccuracy(train, golden.train_labels, query, golden.query_labels, { k: 1 });
    expect(Array.from(r.predictions)).toEqual(golden.knn1.predictions);
    expect(r.top1).toBe(golden.knn1.accuracy);
  });

  it('20-NN majority and weighted', async () => {
    const m = await knnAccuracy(train, golden.train_labels, query, golden.query_labels, { k: 20 });
    expect(Array.from(m.predictions)).toEqual(golden.knn20_majority.predictions);
    expect(m.top1).toBeCloseTo(golden.knn20_majority.accuracy, 12);
    expect(m.ties).toBe(golden.knn20_majority.tie.filter(Boolean).length);
    const w = await knnAccuracy(train, golden.train_labels, query, golden.query_labels, {
      k: 20,
      vote: 'weighted',
    });
    expect(Array.from(w.predictions)).toEqual(golden.knn20_weighted.predictions);
    expect(w.top1).toBeCloseTo(golden.knn20_weighted.accuracy, 12);
    expect(w.top5).toBeGreaterThanOrEqual(w.top1);
  });

  it('refuses mismatched rows, NaN features, bad k and classes without train samples', async () => {
    await expect(
      knnAccuracy(train, golden.train_labels.slice(1), query, golden.query_labels),
    ).rejects.toThrow('train: 200 feature rows but 199 labels; expected one label per row');
    const bad = featureMatrix(query.rows, query.dim, query.data.slice());
    bad.data[3 * query.dim + 2] = Number.NaN;
    await expect(knnAccuracy(train, golden.train_labels, bad, golden.query_labels)).rejects.toThrow(
      /NaN at row 3, column 2/,
    );
    await expect(
      knnAccuracy(train, golden.train_labels, query, golden.query_labels, { k: 201 }),
    ).rejects.toThrow('knnAccuracy: k must be an integer in [1, 200], got 201');
    await expect(
      knnAccuracy(train, golden.train_labels, query, golden.query_labels, { numClasses: 7 }),
    ).rejects.toThrow(
      'knnAccuracy: classes 5, 6 have no train sample; every class in 0…6 needs at least one',
    );
  });
});
