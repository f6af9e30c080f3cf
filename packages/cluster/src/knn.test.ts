import { readFileSync } from 'node:fs';
import { CompressError, type FeatureMatrix, Rng } from '@compress/core';
import { goldenPath } from '@compress/vitest-config';
import { expectClose } from '@compress/vitest-config/close';
import { describe, expect, it } from 'vitest';
import { lastWorkspacePeakBytes } from './engine/engine.js';
import { knnSearch, type Metric } from './index.js';

function matrix(rows: number, dim: number, fill: (i: number) => number): FeatureMatrix {
  const data = new Float32Array(rows * dim);
  for (let i = 0; i < data.length; i++) data[i] = fill(i);
  return { rows, dim, data };
}

/** Small integers: every product and sum is exact in float32, so scores tie exactly where they should. */
function integers(rows: number, dim: number, seed: number, range = 3): FeatureMatrix {
  const rng = new Rng(seed);
  return matrix(rows, dim, () => rng.int(2 * range + 1) - range);
}

/** Brute force in float64: (score, index) of every base row, best first, ties to the lower index. */
function bruteForce(base: FeatureMatrix, queries: FeatureMatrix, k: number, metric: Metric) {
  const { dim: d } = base;
  const indices: number[][] = [];
  const scores: number[][] = [];
  for (let q = 0; q < queries.rows; q++) {
    const all: [number, number][] = [];
    for (let j = 0; j < base.rows; j++) {
      let ip = 0;
      let nx = 0;
      let nq = 0;
      for (let t = 0; t < d; t++) {
        const a = queries.data[q * d + t]!;
        const b = base.data[j * d + t]!;
        ip += a * b;
        nx += b * b;
        nq += a * a;
      }
      const s =
        metric === 'ip'
          ? ip
          : metric === 'l2'
            ? -(nq + nx - 2 * ip)
            : ip / (Math.max(Math.sqrt(nx), 1e-12) * Math.max(Math.sqrt(nq), 1e-12));
      all.push([s, j]);
    }
    all.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    indices.push(all.slice(0, k).map((x) => x[1]));
    scores.push(all.slice(0, k).map((x) => (metric === 'l2' ? -x[0] : x[0])));
  }
  return { indices, scores };
}

function rowsOf<T extends Int32Array | Float32Array>(a: T, k: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < a.length; i += k) out.push(Array.from(a.subarray(i, i + k)));
  return out;
}

describe.each(['wasm', 'onnxruntime'] as const)('knnSearch (engine %s)', (engine) => {
  it('meets the golden k-NN neighbours and cosine similarities (eval.json)', async () => {
    const golden = JSON.parse(readFileSync(goldenPath('eval.json'), 'utf8')).knn;
    const train = golden.train_features as number[][];
    const query = golden.query_features as number[][];
    const base = { rows: train.length, dim: train[0]!.length, data: Float32Array.from(train.flat()) };
    const queries = { rows: query.length, dim: query[0]!.length, data: Float32Array.from(query.flat()) };
    for (const threads of [1, 2]) {
      const r = await knnSearch(base, queries, 20, { engine, metric: 'cosine', threads });
      expect(rowsOf(r.indices, 20)).toEqual(golden.neighbors.indices);
      const want = (golden.neighbors.similarities as number[][]).flat();
      const scale = Math.max(...want.map(Math.abs));
      for (let i = 0; i < want.length; i++) {
        expect(Math.abs(r.scores[i]! - want[i]!)).toBeLessThanOrEqual(
          1e-5 * Math.abs(want[i]!) + 1e-6 * scale,
        );
      }
    }
  });

  it.each([
    ['ip', 1],
    ['ip', 2],
    ['l2', 1],
    ['l2', 2],
    ['cosine', 1],
    ['cosine', 2],
  ] as const)(
    'equals brute force with exact ties on integer data (%s, %i threads)',
    async (metric, threads) => {
      // 3 values per dimension over 9 dimensions: many exact score ties, broken by the lower index.
      const base = integers(700, 9, 1, 1);
      const queries = integers(150, 9, 2, 1);
      const k = 7;
      const r = await knnSearch(base, queries, k, { engine, metric, threads });
      const want = bruteForce(base, queries, k, metric);
      if (metric === 'cosine') {
        // Normalised rows are not exact: compare scores to float precision, indices where unambiguous.
        // (float32 products of unit rows: within a few roundings of the similarities' scale, 1)
        expectClose(r.scores, want.scores.flat(), { rtol: 1e-5, what: 'cosine scores' });
      } else {
        expect(rowsOf(r.indices, k)).toEqual(want.indices);
        expect(rowsOf(r.scores, k)).toEqual(want.scores);
      }
    },
  );

  it('gives duplicate base rows the same score and orders them by index', async () => {
    const rng = new Rng(4);
    const base = matrix(64, 13, () => rng.normal());
    // Rows 5, 17 and 40 are the same vector.
    base.data.copyWithin(17 * 13, 5 * 13, 6 * 13);
    base.data.copyWithin(40 * 13, 5 * 13, 6 * 13);
    const queries = { rows: 1, dim: 13, data: base.data.slice(5 * 13, 6 * 13) };
    for (const metric of ['ip', 'l2', 'cosine'] as const) {
      const r = await knnSearch(base, queries, 3, { engine, metric, threads: 1 });
      expect(Array.from(r.indices)).toEqual([5, 17, 40]);
      expect(r.scores[0]).toBe(r.scores[1]);
      expect(r.scores[1]).toBe(r.scores[2]);
    }
  });

  it('equals brute force on random float data, every query and neighbour (many threads, few queries)', async () => {
    const rng = new Rng(5);
    const base = matrix(1003, 33, () => rng.normal());
    for (const [nq, threads] of [
      [5, 2], // few queries: the base is split between threads and the lists merged
      [97, 2],
      [97, 3],
    ] as const) {
      const queries = matrix(nq, 33, () => rng.normal());
      for (const metric of ['ip', 'l2'] as const) {
        const r = await knnSearch(base, queries, 10, { engine, metric, threads });
        const want = bruteForce(base, queries, 10, metric);
        expect(rowsOf(r.indices, 10)).toEqual(want.indices);
        // float32 sums of 33 products (l2: ‖q‖² + ‖x‖² − 2q·x), whose rounding scales with ‖q‖‖x‖,
        // about the largest score (10–60 here): measured ≤ 2.4e-7 of it, allowed 1e-4 as before
        expectClose(r.scores, want.scores.flat(), { rtol: 1e-4, what: `${metric} scores` });
      }
    }
  });

  it('streams base and queries in blocks with bounded memory and the same result', async () => {
    const base = integers(6000, 64, 6, 2);
    const queries = integers(500, 64, 7, 2);
    const whole = await knnSearch(base, queries, 5, { engine, metric: 'l2', threads: 2 });
    const wholeBytes = lastWorkspacePeakBytes();
    const events: number[] = [];
    const blockBytes = 64 * 1024; // 128 base rows and ≤ 4 groups of queries at a time
    const blocked = await knnSearch(base, queries, 5, {
      engine,
      metric: 'l2',
      threads: 2,
      blockBytes,
      onProgress: (e) => events.push(e.metrics!.memoryBytes!),
    });
    expect(blocked.indices).toEqual(whole.indices);
    expect(blocked.scores).toEqual(whole.scores);
    expect(events.length).toBeGreaterThan(40);
    if (engine === 'onnxruntime') {
      // A base block, a query group and onnxruntime's score block, each within the budget.
      expect(Math.max(...events)).toBeLessThanOrEqual(blockBytes);
      return;
    }
    // 6000 × 64 floats are 1.5 MiB; the engine held two blocks, one query group and 2 pages of slack.
    const bound = 3 * blockBytes + 2 * 65536 + 2 * 65536;
    expect(lastWorkspacePeakBytes()).toBeLessThanOrEqual(bound);
    expect(Math.max(...events)).toBeLessThanOrEqual(bound);
    expect(wholeBytes).toBeGreaterThan(2 * 6000 * 64 * 4);
  });

  it('handles k = N, a single row, D not a multiple of 4 and no queries', async () => {
    const base = integers(11, 3, 8);
    const queries = integers(2, 3, 9);
    const r = await knnSearch(base, queries, 11, { engine, metric: 'ip' });
    expect(rowsOf(r.indices, 11)).toEqual(bruteForce(base, queries, 11, 'ip').indices);
    const one = await knnSearch(
      { rows: 1, dim: 1, data: Float32Array.of(2) },
      { rows: 1, dim: 1, data: Float32Array.of(3) },
      1,
      { engine, metric: 'l2' },
    );
    expect(Array.from(one.indices)).toEqual([0]);
    expect(Array.from(one.scores)).toEqual([1]);
    const none = await knnSearch(base, { rows: 0, dim: 3, data: new Float32Array(0) }, 2, { engine });
    expect(none.indices.length).toBe(0);
  });

  it('rejects bad input with messages naming it', async () => {
    const base = integers(10, 4, 1);
    const queries = integers(3, 4, 2);
    await expect(knnSearch(base, integers(3, 5, 2), 1, { engine })).rejects.toThrow(
      'knnSearch: queries.dim (5) must equal base.dim (4)',
    );
    await expect(knnSearch(base, queries, 11, { engine })).rejects.toThrow(
      'knnSearch: k must be an integer from 1 to 10 (the number of base rows), got 11',
    );
    await expect(knnSearch(base, queries, 0, { engine })).rejects.toThrow(
      'knnSearch: k must be an integer from 1 to 10',
    );
    const bad = integers(10, 4, 1);
    bad.data[6 * 4 + 2] = Number.NaN;
    await expect(knnSearch(bad, queries, 1, { engine })).rejects.toThrow(
      'knnSearch: base: found NaN at row 6, column 2 (non-finite rows: row 6); expected finite numbers',
    );
    const badQ = integers(3, 4, 2);
    badQ.data[1 * 4] = Number.POSITIVE_INFINITY;
    await expect(knnSearch(base, badQ, 1, { engine })).rejects.toThrow(
      'knnSearch: queries: found Infinity at row 1, column 0',
    );
    await expect(knnSearch(base, queries, 1, { engine, metric: 'dot' as Metric })).rejects.toThrow(
      `knnSearch: options.metric must be one of 'cosine', 'ip', 'l2', got "dot"`,
    );
    await expect(
      knnSearch({ rows: 3, dim: 4, data: new Float32Array(5) }, queries, 1, { engine }),
    ).rejects.toThrow('knnSearch: base: expected 3×4 = 12 values, found 5');
    await expect(knnSearch(base, queries, 1, { engine, threads: -1 })).rejects.toThrow(
      'knnSearch: options.threads must be an integer from 0 (one per core) to 256, got -1',
    );
    // 0: one per core
    expect((await knnSearch(base, queries, 1, { engine, threads: 0 })).indices).toEqual(
      (await knnSearch(base, queries, 1, { engine, threads: 1 })).indices,
    );
    await expect(knnSearch(base, queries, 1, { engine: 'gpu' as 'wasm' })).rejects.toThrow(
      `knnSearch: options.engine must be one of 'auto', 'wasm', 'onnxruntime', got "gpu"`,
    );
    const err = await knnSearch(base, queries, 11, { engine }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CompressError);
    expect((err as CompressError).code).toBe('INVALID_ARGUMENT');
  });
});
