import { type Dataset, Rng } from '@compress/core';

/** A seeded subset of `n` dataset indices (sorted), or null for the whole dataset. */
export function subsetIndices(
  length: number,
  n: number | undefined,
  seed: number,
  purpose: string,
): Int32Array | null {
  if (n === undefined || n >= length) return null;
  return new Rng(seed).fork(purpose).permutation(length).slice(0, n).sort();
}

/** A dataset restricted to some of its indices (for evaluation on a subset). */
export function subsetDataset(dataset: Dataset, indices: Int32Array | null): Dataset {
  if (!indices) return dataset;
  return {
    name: `${dataset.name}[${indices.length}]`,
    length: indices.length,
    classes: dataset.classes,
    imageShape: dataset.imageShape,
    fingerprint: `${dataset.fingerprint}/subset:${indices.length}`,
    get: async (i: number) => {
      const s = await dataset.get(indices[i]!);
      return { ...s, index: i };
    },
  };
}
