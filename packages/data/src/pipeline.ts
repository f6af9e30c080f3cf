import {
  CompressError,
  type Dataset,
  type FloatImage,
  type ImageBatch,
  type RawImage,
  Rng,
} from '@compress/core';
import { isResizing } from './datasets/common.js';
import type { Transform } from './transforms/transform.js';

/** A batch from the loader: an {@link ImageBatch} with labels and where it sits in the run. */
export interface LoaderBatch extends ImageBatch {
  labels: Int32Array;
  /** Epoch the batch belongs to. */
  epoch: number;
  /** Step within the epoch (0-based). */
  step: number;
}

/**
 * The order in which an epoch visits the dataset: a permutation of 0…length−1 drawn from
 * `(seed, epoch)` when shuffling, else the identity. The same for every worker count.
 */
export function epochOrder(length: number, seed: number, epoch: number, shuffle: boolean): Int32Array {
  if (!shuffle) return Int32Array.from({ length }, (_, i) => i);
  return new Rng(seed).fork('loader/order').fork(epoch).permutation(length);
}

/**
 * The random stream that augments sample `index` in `epoch`: derived from `(seed, epoch, index)`
 * only, never from which worker or in which order samples are processed, so batches are the same
 * for any worker count and when an epoch resumes at a later step.
 */
export function augmentationRng(seed: number, epoch: number, index: number): Rng {
  return epochAugmentationRoot(seed, epoch).fork(index);
}

export function epochAugmentationRoot(seed: number, epoch: number): Rng {
  return new Rng(seed).fork('loader/augment').fork(epoch);
}

type AnyImage = RawImage | FloatImage;

/** Loads sample `index` and applies `transform`, fusing a leading crop+resize into the decoder when the dataset can. */
export function loadSample(
  dataset: Dataset,
  transform: Transform | null,
  index: number,
  rng: Rng,
):
  | { image: AnyImage; label: number; index: number }
  | Promise<{ image: AnyImage; label: number; index: number }> {
  const steps = transform === null ? [] : (transform.steps ?? [transform]);
  const apply = (image: AnyImage, from: number): AnyImage => {
    let out = image;
    for (let i = from; i < steps.length; i++) out = steps[i]!(out, rng);
    return out;
  };
  const first = steps[0];
  if (first?.plan && isResizing(dataset)) {
    const plan = first.plan;
    return dataset
      .getResized(index, (w, h) => plan(w, h, rng))
      .then((s) => ({ index: s.index, label: s.label, image: apply(s.image, 1) }));
  }
  const sample = dataset.get(index);
  if (sample instanceof Promise) {
    return sample.then((s) => ({ index: s.index, label: s.label, image: apply(s.image, 0) }));
  }
  return { index: sample.index, label: sample.label, image: apply(sample.image, 0) };
}

/**
 * Loads, augments and batches `indices` into NHWC floats (8-bit values ÷ 255, float values as they
 * are). Up to `concurrency` samples of an async dataset are decoded at once.
 */
export async function loadBatch(
  dataset: Dataset,
  transform: Transform | null,
  seed: number,
  epoch: number,
  step: number,
  indices: Int32Array,
  concurrency: number,
): Promise<LoaderBatch> {
  const root = epochAugmentationRoot(seed, epoch);
  const b = indices.length;
  const labels = new Int32Array(b);
  let images: Float32Array | null = null;
  let shape: [number, number, number] | null = null;
  let shapeFrom = -1;
  const put = (pos: number, s: { image: AnyImage; label: number; index: number }): void => {
    const index = indices[pos]!;
    if (s.index !== index) {
      throw new CompressError(
        'MISMATCH',
        `${dataset.name}: get(${index}) returned the sample of index ${s.index}; a dataset must return the index it was asked for`,
        { input: dataset.name },
      );
    }
    const { image } = s;
    const { height: h, width: w, channels: c } = image;
    if (shape === null) {
      shape = [h, w, c];
      shapeFrom = index;
      images = new Float32Array(b * h * w * c);
    } else if (shape[0] !== h || shape[1] !== w || shape[2] !== c) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `${dataset.name}: image of dataset index ${index} is ${h}×${w}×${c} after the transform, but index ${shapeFrom} in the same batch is ${shape.join('×')}; a batch needs one size (add resize/centerCrop/randomResizedCrop to the transform)`,
        { input: `index ${index}` },
      );
    }
    const per = h * w * c;
    if (image.data.length !== per) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `${dataset.name}: image of dataset index ${index} has ${image.data.length} values, expected ${h}×${w}×${c} = ${per}`,
        { input: `index ${index}` },
      );
    }
    const out = images!;
    const o = pos * per;
    if (image.data instanceof Float32Array) {
      out.set(image.data, o);
    } else {
      const src = image.data;
      for (let i = 0; i < per; i++) out[o + i] = src[i]! / 255;
    }
    labels[pos] = s.label;
  };

  let next = 0;
  const run = async (): Promise<void> => {
    for (let pos = next++; pos < b; pos = next++) {
      const index = indices[pos]!;
      const s = loadSample(dataset, transform, index, root.fork(index));
      put(pos, s instanceof Promise ? await s : s);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, b)) }, run));
  const [h, w, c] = shape!;
  return { indices: Int32Array.from(indices), images: images!, shape: [b, h, w, c], labels, epoch, step };
}
