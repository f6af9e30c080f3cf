import { CompressError, type FeatureMatrix, Rng } from '@compress/core';
import { describe, expect, it } from 'vitest';
import { type KnnPart, type KnnResult, knnSearch, type Metric, mergeKnnResults } from './index.js';

function matrix(rows: number, dim: number, fill: () => number): FeatureMatrix {
  const data = new Float32Array(rows * dim);
  for (let i = 0; i < data.length; i++) data[i] = fill();
  return { rows, dim, data };
}

/** Rows r0 … r0 + n − 1 of m (a view, as a shard is a slice of the base). */
function rowsOf(m: FeatureMatrix, r0: number, n: number): FeatureMatrix {
  return { rows: n, dim: m.dim, data: m.data.subarray(r0 * m.dim, (r0 + n) * m.dim) };
}

type Engine = 'wasm' | 'onnxruntime';

/** knnSearch on each shard (k capped at the shard's rows), as the parts mergeKnnResults takes. */
async function searchShards(
  base: FeatureMatrix,
  queries: FeatureMatrix,
  sizes: readonly number[],
  k: number,
  metric: Metric,
  engine: Engine,
): Promise<KnnPart[]> {
  const parts: KnnPart[] = [];
  let offset = 0;
  for (const n of sizes) {
    const result = await knnSearch(rowsOf(base, offset, n), queries, Math.min(k, n), {
      metric,
      engine,
      threads: 1,
    });
    parts.push({ result, offset });
    offset += n;
  }
  expect(offset).toBe(base.rows);
  return parts;
}

/** Indices equal and scores equal bit for bit. */
function expectSame(got: KnnResult, want: KnnResult): void {
  expect(got.k).toBe(want.k);
  expect(got.indices).toEqual(want.indices);
  expect(new Uint32Array(got.scores.buffer)).toEqual(new Uint32Array(want.scores.buffer));
}

const METRICS: readonly Metric[] = ['cosine', 'ip', 'l2'];

describe.each(['wasm', 'onnxruntime'] as const)('mergeKnnResults (shards searched on %s)', (engine) => {
  const rng = new Rng(11);
  const base = matrix(503, 37, () => rng.normal());
  const queries = matrix(61, 37, () => rng.normal());
  // One shard, halves, thirds, and uneven shards with 7 and 1 rows (fewer than k = 20).
  const splits: readonly (readonly number[])[] = [[503], [251, 252], [168, 168, 167], [7, 300, 1, 195]];

  for (const metric of METRICS) {
    for (const k of [1, 20]) {
      it(`equals knnSearch over the whole base (${metric}, k = ${k}, shards ${splits.map((s) => s.length).join('/')})`, async () => {
        const whole = await knnSearch(base, queries, k, { metric, engine, threads: 2 });
        for (const sizes of splits) {
          const parts = await searchShards(base, queries, sizes, k, metric, engine);
          expectSame(mergeKnnResults(parts, metric), whole);
          // The order of the parts does not matter.
          expectSame(mergeKnnResults([...parts].reverse(), metric), whole);
        }
      });
    }
  }

  it('breaks exact ties across shards by the lower global index', async () => {
    // 3 values per dimension over 5 dimensions: many exact ties, spread over every shard.
    const ints = new Rng(12);
    const b = matrix(400, 5, () => ints.int(3) - 1);
    const q = matrix(40, 5, () => ints.int(3) - 1);
    for (const metric of METRICS) {
      const whole = await knnSearch(b, q, 20, { metric, engine, threads: 1 });
      for (const sizes of [
        [200, 200],
        [13, 150, 100, 137],
      ]) {
        const parts = await searchShards(b, q, sizes, 20, metric, engine);
        expectSame(mergeKnnResults([...parts].reverse(), metric), whole);
      }
    }
    // The same row in three shards: the query's own copies, lower index first, whatever the order.
    const dup = matrix(30, 6, () => ints.normal());
    dup.data.copyWithin(14 * 6, 2 * 6, 3 * 6);
    dup.data.copyWithin(27 * 6, 2 * 6, 3 * 6);
    const self = rowsOf(dup, 2, 1);
    for (const metric of METRICS) {
      const parts = await searchShards(dup, self, [10, 10, 10], 3, metric, engine);
      const merged = mergeKnnResults([parts[2]!, parts[0]!, parts[1]!], metric);
      expect(Array.from(merged.indices)).toEqual([2, 14, 27]);
      expect(merged.scores[0]).toBe(merged.scores[1]);
      expect(merged.scores[1]).toBe(merged.scores[2]);
    }
  });
});

describe('mergeKnnResults', () => {
  it('merges shards all smaller than k with options.k, and takes fewer neighbours than the parts hold', async () => {
    const rng = new Rng(13);
    const base = matrix(6, 4, () => rng.normal());
    const queries = matrix(5, 4, () => rng.normal());
    const parts = await searchShards(base, queries, [3, 3], 5, 'l2', 'wasm');
    expect(parts.map((p) => p.result.k)).toEqual([3, 3]);
    const whole = await knnSearch(base, queries, 5, { metric: 'l2', engine: 'wasm' });
    expectSame(mergeKnnResults(parts, 'l2', { k: 5 }), whole);
    // Without options.k: the largest part's k.
    expectSame(
      mergeKnnResults(parts, 'l2'),
      await knnSearch(base, queries, 3, { metric: 'l2', engine: 'wasm' }),
    );
    expectSame(
      mergeKnnResults(parts, 'l2', { k: 2 }),
      await knnSearch(base, queries, 2, { metric: 'l2', engine: 'wasm' }),
    );
    // Row counts given: checked, same result.
    expectSame(
      mergeKnnResults(
        parts.map((p) => ({ ...p, rows: 3 })),
        'l2',
        { k: 5 },
      ),
      whole,
    );
    // No queries.
    const none = mergeKnnResults(
      [
        { result: { indices: new Int32Array(0), scores: new Float32Array(0), k: 4 }, offset: 0 },
        { result: { indices: new Int32Array(0), scores: new Float32Array(0), k: 4 }, offset: 10 },
      ],
      'ip',
    );
    expect(none.k).toBe(4);
    expect(none.indices.length).toBe(0);
  });

  it('rejects bad input with messages naming it', async () => {
    const rng = new Rng(14);
    const base = matrix(40, 4, () => rng.normal());
    const queries = matrix(3, 4, () => rng.normal());
    const parts = await searchShards(base, queries, [20, 20], 5, 'cosine', 'wasm');
    const [a, b] = parts as [KnnPart, KnnPart];
    const merge =
      (p: readonly KnnPart[], metric: Metric = 'cosine', k?: number) =>
      () =>
        mergeKnnResults(p, metric, k === undefined ? {} : { k });

    expect(merge([])).toThrow('mergeKnnResults: parts must be a non-empty array of { result, offset }');
    expect(merge(parts, 'dot' as Metric)).toThrow(
      `mergeKnnResults: metric must be one of 'cosine', 'ip', 'l2', got "dot"`,
    );
    const fewer = {
      ...b,
      result: { ...b.result, indices: b.result.indices.slice(5), scores: b.result.scores.slice(5) },
    };
    expect(merge([a, fewer])).toThrow(
      'mergeKnnResults: parts[1] has 2 queries, parts[0] has 3; every part must answer the same queries',
    );
    expect(merge(parts, 'cosine', 11)).toThrow(
      `mergeKnnResults: options.k must be an integer from 1 to 10 (the parts' neighbours per query together), got 11`,
    );
    expect(merge(parts, 'cosine', 0)).toThrow('mergeKnnResults: options.k must be an integer from 1 to 10');
    // Overlapping ranges: the same offset, or an offset inside another part's known rows.
    expect(merge([a, { ...b, offset: 0 }])).toThrow('mergeKnnResults: parts[0] and parts[1] overlap');
    expect(
      merge([
        { ...a, rows: 20 },
        { ...b, offset: 15 },
      ]),
    ).toThrow(
      'mergeKnnResults: parts[0] and parts[1] overlap: parts[0] covers base rows 0…19, parts[1] starts at 15',
    );
    const top = Math.max(...a.result.indices);
    expect(merge([{ ...b, offset: top }, a])).toThrow(
      `mergeKnnResults: parts[1] and parts[0] overlap: parts[1] covers at least base rows 0…${top}, parts[0] starts at ${top}; shards must be disjoint ranges of the base`,
    );
    expect(
      merge([
        { ...b, offset: 20, rows: 20 },
        { ...a, rows: 21 },
      ]),
    ).toThrow(
      'mergeKnnResults: parts[1] and parts[0] overlap: parts[1] covers base rows 0…20, parts[0] starts at 20',
    );
    // A part with fewer neighbours than k that is not a whole shard.
    const short = await knnSearch(rowsOf(base, 20, 20), queries, 3, { metric: 'cosine', engine: 'wasm' });
    expect(merge([a, { result: short, offset: 20 }])).toThrow(
      'mergeKnnResults: parts[1].result.k is 3 < merged k = 5, but query 0 does not list every row 0…2',
    );
    expect(merge([a, { result: short, offset: 20, rows: 20 }])).toThrow(
      'mergeKnnResults: parts[1].result.k is 3, but the shard has 20 rows: searching it with k = 5 is needed for merged k = 5',
    );
    expect(merge([a, { ...b, rows: 4 }])).toThrow(
      `mergeKnnResults: parts[1].result.k is 5, more neighbours than the shard's 4 rows`,
    );
    expect(merge([a, { ...b, rows: 10 }])).toThrow('mergeKnnResults: parts[1].result.indices: query');
    // Results of another metric: not best first.
    expect(merge(parts, 'l2')).toThrow(
      `mergeKnnResults: parts[0].result.scores: query 0 is not best first for metric 'l2' (`,
    );
    const nan = { ...b, result: { ...b.result, scores: b.result.scores.slice() } };
    nan.result.scores[7] = Number.NaN;
    expect(merge([a, nan])).toThrow(
      'mergeKnnResults: parts[1].result.scores: query 1 has score NaN; expected finite numbers',
    );
    const negative = { ...b, result: { ...b.result, indices: b.result.indices.slice() } };
    negative.result.indices[0] = -1;
    expect(merge([a, negative])).toThrow(
      `mergeKnnResults: parts[1].result.indices: query 0 has index -1, expected ≥ 0; indices count from the shard's first row`,
    );
    expect(merge([a, { ...b, offset: -1 }])).toThrow(
      'mergeKnnResults: parts[1].offset must be an integer from 0 to 2147483647, got -1',
    );
    expect(merge([a, { ...b, offset: 2 ** 31 - 3 }])).toThrow('is beyond int32 global indices (2147483647)');
    const floats = {
      ...b,
      result: { ...b.result, indices: Float32Array.from(b.result.indices) as unknown as Int32Array },
    };
    expect(merge([a, floats])).toThrow('mergeKnnResults: parts[1].result.indices must be an Int32Array');
    const ragged = { ...b, result: { ...b.result, scores: b.result.scores.slice(1) } };
    expect(merge([a, ragged])).toThrow(
      'mergeKnnResults: parts[1].result: expected queries × k values (k = 5) in both indices and scores, found 15 indices and 14 scores',
    );
    const err = (() => {
      try {
        mergeKnnResults([a, { ...b, offset: 0 }], 'cosine');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(CompressError);
    expect((err as CompressError).code).toBe('INVALID_ARGUMENT');
  });
});
