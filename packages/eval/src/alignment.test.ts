import { readFileSync } from 'node:fs';
import { featureMatrix, Rng } from '@compress/core';
import { goldenPath } from '@compress/vitest-config';
import { describe, expect, it } from 'vitest';
import { alignClusters, clusterAlignment } from './alignment.js';

const golden = JSON.parse(readFileSync(goldenPath('eval.json'), 'utf8')).cluster_alignment;

describe("alignClusters (golden: the paper's normalised score, not raw counts)", () => {
  const split = (pairs: number[][]) => [pairs.map((p) => p[0]!), pairs.map((p) => p[1]!)] as const;
  const [tc, tl] = split(golden.train_pairs);
  const [vc, vl] = split(golden.val_pairs);
  const k = golden.num_clusters;
  const c = golden.num_classes;

  it('matches counts, scores, mapping and both accuracies', () => {
    const a = alignClusters(tc, tl, vc, vl, k, c);
    expect(Array.from(a.counts)).toEqual(golden.counts.flat());
    for (const [i, s] of (golden.score.flat() as number[]).entries()) expect(a.score[i]).toBeCloseTo(s, 12);
    expect(Array.from(a.mapping)).toEqual(golden.mapping);
    expect(a.trainAccuracy).toBeCloseTo(golden.train_accuracy, 12);
    expect(a.valAccuracy).toBeCloseTo(golden.val_accuracy, 12);
    expect(Array.from(a.valCounts)).toEqual(golden.val_counts.flat());
  });

  it('differs from the count-based mapping, which it reproduces on request', () => {
    const byCounts = alignClusters(tc, tl, vc, vl, k, c, 'counts');
    expect(Array.from(byCounts.mapping)).toEqual(golden.by_counts.mapping);
    expect(byCounts.mapping).not.toEqual(alignClusters(tc, tl, vc, vl, k, c).mapping);
    expect(byCounts.trainAccuracy).toBeCloseTo(golden.by_counts.train_accuracy, 12);
    expect(byCounts.valAccuracy).toBeCloseTo(golden.by_counts.val_accuracy, 12);
  });

  it('refuses out-of-range ids', () => {
    expect(() => alignClusters([0, 9], [0, 1], [], [], 5, 5)).toThrow(
      'alignClusters: train sample 1 has cluster 9 and label 1; expected cluster in [0, 5) and label in [0, 5)',
    );
  });
});

describe('clusterAlignment on features', () => {
  it('recovers well-separated classes exactly and orders the confusion matrix by mapped class', async () => {
    const rng = new Rng(1);
    const classes = 4;
    const dim = 6;
    const make = (n: number) => {
      const labels = Array.from({ length: n }, (_, i) => i % classes);
      const data = new Float32Array(n * dim);
      labels.forEach((l, i) => {
        for (let j = 0; j < dim; j++) data[i * dim + j] = (j === l ? 10 : 0) + rng.normal(0, 0.3);
      });
      return { f: featureMatrix(n, dim, data), labels };
    };
    const tr = make(200);
    const va = make(80);
    const r = await clusterAlignment(tr.f, tr.labels, va.f, va.labels, { seed: 3 });
    expect(r.trainAccuracy).toBe(1);
    expect(r.valAccuracy).toBe(1);
    for (let i = 0; i < classes; i++) expect(r.confusion[i * classes + i]).toBe(20);
  });

  it('refuses features of different dims', async () => {
    const a = featureMatrix(10, 3);
    const b = featureMatrix(10, 4);
    await expect(clusterAlignment(a, new Array(10).fill(0), b, new Array(10).fill(0))).rejects.toThrow(
      'clusterAlignment: train features have dim 3, val features 4; expected the same',
    );
  });
});
