import {
  CompressError,
  type Dataset,
  type FloatImage,
  type ImageBatch,
  type RawImage,
  Rng,
  type Sample,
} from '@compress/core';
import { isResizing } from './datasets/common.js';
import { flip } from './transforms/geometry.js';
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

/** A loaded, transformed sample; `mirrored` asks the batch writer to flip it while copying. */
interface Loaded {
  image: AnyImage;
  label: number;
  index: number;
  mirrored: boolean;
}

function isFlip(t: Transform | undefined): t is Transform & { spec: { kind: 'horizontalFlip'; p: number } } {
  return t?.spec?.kind === 'horizontalFlip';
}

/**
 * Loads sample `index` and applies `transform`, fusing a leading crop+resize into the decoder when
 * the dataset can, and a trailing horizontal flip into the batch copy (same random draws, same
 * result, one pass less over the pixels).
 */
function loadTransformed(
  dataset: Dataset,
  transform: Transform | null,
  index: number,
  rng: Rng,
): Loaded | Promise<Loaded> {
  const steps = transform === null ? [] : (transform.steps ?? [transform]);
  const last = steps[steps.length - 1];
  const flipP = isFlip(last) ? last.spec.p : null;
  const end = flipP === null ? steps.length : steps.length - 1;
  const finish = (s: Sample | { index: number; label: number; image: AnyImage }, from: number): Loaded => {
    let image: AnyImage = s.image;
    for (let i = from; i < end; i++) image = steps[i]!(image, rng);
    const mirrored = flipP !== null && rng.next() < flipP;
    return { index: s.index, label: s.label, image, mirrored };
  };
  const first = steps[0];
  if (end > 0 && first?.plan && isResizing(dataset)) {
    const plan = first.plan;
    return dataset.getResized(index, (w, h) => plan(w, h, rng)).then((s) => finish(s, 1));
  }
  const sample = dataset.get(index);
  return sample instanceof Promise ? sample.then((s) => finish(s, 0)) : finish(sample, 0);
}

/** Loads sample `index` and applies `transform` with `rng`, as the loader does (see {@link augmentationRng}). */
export async function loadSample(
  dataset: Dataset,
  transform: Transform | null,
  index: number,
  rng: Rng,
): Promise<{ image: AnyImage; label: number; index: number }> {
  const s = await loadTransformed(dataset, transform, index, rng);
  return { index: s.index, label: s.label, image: s.mirrored ? flip(s.image) : s.image };
}

// 8-bit value → float, exactly v / 255 (as torchvision's ToTensor), by table.
const toUnit = Float32Array.from({ length: 256 }, (_, v) => v / 255);

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
  const put = (pos: number, s: Loaded): void => {
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
    if (s.mirrored) {
      const rowLen = w * c;
      for (let y = 0; y < h; y++) {
        const row = y * rowLen;
        for (let x = 0; x < w; x++) {
          const from = row + x * c;
          const to = o + row + (w - 1 - x) * c;
          if (image.data instanceof Float32Array)
            for (let ch = 0; ch < c; ch++) out[to + ch] = image.data[from + ch]!;
          else for (let ch = 0; ch < c; ch++) out[to + ch] = toUnit[image.data[from + ch]!]!;
        }
      }
    } else if (image.data instanceof Float32Array) {
      out.set(image.data, o);
    } else {
      const src = image.data;
      for (let i = 0; i < per; i++) out[o + i] = toUnit[src[i]!]!;
    }
    labels[pos] = s.label;
  };

  let next = 0;
  const run = async (): Promise<void> => {
    for (let pos = next++; pos < b; pos = next++) {
      const index = indices[pos]!;
      const s = loadTransformed(dataset, transform, index, root.fork(index));
      put(pos, s instanceof Promise ? await s : s);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, b)) }, run));
  const [h, w, c] = shape!;
  return { indices: Int32Array.from(indices), images: images!, shape: [b, h, w, c], labels, epoch, step };
}
