import {
  assertFinite,
  CompressError,
  collate,
  type Dataset,
  type FeatureMatrix,
  featureMatrix,
  type ImageBatch,
  type ImageTransform,
  type ProgressListener,
  Rng,
  type Teacher,
} from '@compress/core';

/** Anything that maps an image batch to features: a Teacher, a student wrapped as one, raw pixels. */
export type FeatureExtractor = Pick<Teacher, 'dim' | 'embed'>;

export interface ExtractOptions {
  /**
   * Evaluation transform applied to every image (resize + centre crop for photos); identity for
   * 28 px data. Deterministic transforms only: it receives a fixed-seed Rng.
   */
  transform?: ImageTransform;
  /** @default 256 */
  batchSize?: number;
  onProgress?: ProgressListener;
}

export interface ExtractedFeatures {
  features: FeatureMatrix;
  labels: Int32Array;
}

/** Batches of a dataset in index order, after `transform`. */
export async function* datasetBatches(
  dataset: Dataset,
  batchSize: number,
  transform?: ImageTransform,
): AsyncGenerator<ImageBatch> {
  const rng = new Rng(0);
  for (let start = 0; start < dataset.length; start += batchSize) {
    const end = Math.min(dataset.length, start + batchSize);
    const items = [];
    for (let i = start; i < end; i++) {
      const s = await dataset.get(i);
      items.push({ index: s.index, label: s.label, image: transform ? transform(s.image, rng) : s.image });
    }
    yield collate(items);
  }
}

/**
 * Features of every image of `dataset` (rows in dataset-index order) and its labels, from a
 * frozen extractor. A NaN or Inf in the output is an error naming the dataset index.
 */
export async function extractFeatures(
  extractor: FeatureExtractor,
  dataset: Dataset,
  options: ExtractOptions = {},
): Promise<ExtractedFeatures> {
  const batchSize = options.batchSize ?? 256;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `extractFeatures: batchSize must be a positive integer, got ${batchSize}`,
      {
        input: 'batchSize',
      },
    );
  }
  const out = featureMatrix(dataset.length, extractor.dim);
  const labels = new Int32Array(dataset.length);
  let done = 0;
  for await (const batch of datasetBatches(dataset, batchSize, options.transform)) {
    const f = await extractor.embed(batch);
    const rows = batch.indices.length;
    if (f.rows !== rows || f.dim !== extractor.dim) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `extractFeatures: the extractor returned ${f.rows}×${f.dim} features for a batch of ${rows}, expected ${rows}×${extractor.dim}`,
        { input: 'extractor' },
      );
    }
    assertFinite(f, 'extracted features', (r) => `dataset index ${batch.indices[r]}`);
    for (let r = 0; r < rows; r++) {
      const index = batch.indices[r]!;
      out.data.set(f.data.subarray(r * f.dim, (r + 1) * f.dim), index * f.dim);
      labels[index] = batch.labels?.[r] ?? -1;
    }
    done += rows;
    options.onProgress?.({ phase: 'extract-features', done, total: dataset.length, unit: 'images' });
  }
  return { features: out, labels };
}

/** The raw-pixel baseline as an extractor: each image flattened (H·W·C values in [0, 1]). */
export function rawPixels(imageShape: readonly [number, number, number]): FeatureExtractor {
  const dim = imageShape[0] * imageShape[1] * imageShape[2];
  return {
    dim,
    async embed(batch: ImageBatch): Promise<FeatureMatrix> {
      const [, h, w, c] = batch.shape;
      if (h * w * c !== dim) {
        throw new CompressError(
          'SHAPE_MISMATCH',
          `rawPixels: images are ${h}×${w}×${c}, expected ${imageShape.join('×')}`,
          { input: 'batch' },
        );
      }
      return featureMatrix(batch.shape[0], dim, batch.images.slice());
    },
  };
}
