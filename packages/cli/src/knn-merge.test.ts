// TEMPORARY with knn-merge.ts: goes when mergeKnnResults comes from @compress/cluster.
import { knnSearch, type Metric } from '@compress/cluster';
import { featureMatrix, Rng } from '@compress/core';
import { describe, expect, it } from 'vitest';
import { mergeKnnResults } from './knn-merge.js';

describe('mergeKnnResults (local stand-in)', () => {
  for (const metric of ['ip', 'l2', 'cosine'] as Metric[]) {
    it(`the top-k of a base searched in uneven shards is the unsharded top-k, ties included (${metric})`, async () => {
      const rng = new Rng(metric);
      const n = 97;
      const d = 4;
      // few distinct values: many tied scores across shards
      const base = featureMatrix(
        n,
        d,
        Float32Array.from({ length: n * d }, () => rng.int(3) - 1),
      );
      const queries = featureMatrix(
        13,
        d,
        Float32Array.from({ length: 13 * d }, () => rng.int(3) - 1),
      );
      for (let r = 0; r < n; r++)
        if (base.data.subarray(r * d, r * d + d).every((v) => v === 0)) base.data[r * d] = 1;
      const k = 10;
      const whole = await knnSearch(base, queries, k, { metric, threads: 1 });
      const cuts = [0, 5, 40, 41, 97];
      const parts = [];
      for (let s = 0; s + 1 < cuts.length; s++) {
        const [from, to] = [cuts[s]!, cuts[s + 1]!];
        const shard = featureMatrix(to - from, d, base.data.slice(from * d, to * d));
        parts.push({
          result: await knnSearch(shard, queries, Math.min(k, to - from), { metric, threads: 1 }),
          offset: from,
        });
      }
      const merged = mergeKnnResults(parts.reverse(), metric);
      expect(merged.k).toBe(k);
      expect(Array.from(merged.indices)).toEqual(Array.from(whole.indices));
      expect(Array.from(merged.scores)).toEqual(Array.from(whole.scores));
    });
  }
});
