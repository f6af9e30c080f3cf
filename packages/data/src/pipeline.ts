import {
  CompressError,
  type Dataset,
  type FloatImage,
  type ImageBatch,
  type RawImage,
  Rng,
  type Sample,
} from '@compress/core';
import { type BatchSlot, isResizing } from './datasets/common.js';
import { newBatchArray } from './datasets/jpeg-native.js';
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

/**
 * A loaded, transformed sample; `mirrored` asks the batch writer to flip it while copying, and
 * `image: null` says the dataset wrote it into its batch slot already.
 */
interface Loaded {
  image: AnyImage | null;
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
 * result, one pass less over the pixels). With `slot`, a dataset that can write a crop+resize(+flip)
 * straight into the batch does (when those are the whole transform).
 */
function loadTransformed(
  dataset: Dataset,
  transform: Transform | null,
  index: number,
  rng: Rng,
  slot?: (height: number, width: number, channels: number) => BatchSlot,
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
  if (end === 1 && slot && first?.plan && isResizing(dataset) && dataset.getResizedInto) {
    const plan = first.plan;
    return dataset.getResizedInto(
      index,
      (w, h) => plan(w, h, rng),
      () => flipP !== null && rng.next() < flipP,
      slot,
    );
  }
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
  const image = s.image!; // no batch slot: always an image
  return { index: s.index, label: s.label, image: s.mirrored ? flip(image) : image };
}

// 8-bit value → float, exactly v / 255 (as torchvision's ToTensor), by table.
const toUnit = Float32Array.from({ length: 256 }, (_, v) => v / 255);

// The batch copies below run once per value of every batch (150 528 per 224×224 RGB image): each
// is monomorphic in its array types, so the loops stay tight (a shared loop that tested the
// source's type per value cost ~18 ns per value).

/** `out[o + i] = src[i] / 255`. */
function unit(src: Uint8Array, out: Float32Array, o: number, n: number): void {
  for (let i = 0; i < n; i++) out[o + i] = toUnit[src[i]!]!;
}

/** Rows of `rowLen` values, pixels of `c` values, written mirrored (and ÷ 255) from `o`. */
function unitFlipped(
  src: Uint8Array,
  out: Float32Array,
  o: number,
  h: number,
  rowLen: number,
  c: number,
): void {
  for (let y = 0, row = 0; y < h; y++, row += rowLen) {
    let to = o + row + rowLen - c;
    if (c === 3) {
      for (let from = row; from < row + rowLen; from += 3, to -= 3) {
        out[to] = toUnit[src[from]!]!;
        out[to + 1] = toUnit[src[from + 1]!]!;
        out[to + 2] = toUnit[src[from + 2]!]!;
      }
    } else {
      for (let from = row; from < row + rowLen; from += c, to -= c)
        for (let ch = 0; ch < c; ch++) out[to + ch] = toUnit[src[from + ch]!]!;
    }
  }
}

/** As {@link unitFlipped} for float images (values as they are). */
function copyFlipped(
  src: Float32Array,
  out: Float32Array,
  o: number,
  h: number,
  rowLen: number,
  c: number,
): void {
  for (let y = 0, row = 0; y < h; y++, row += rowLen) {
    let to = o + row + rowLen - c;
    for (let from = row; from < row + rowLen; from += c, to -= c)
      for (let ch = 0; ch < c; ch++) out[to + ch] = src[from + ch]!;
  }
}

/**
 * Loads, augments and batches `indices` into NHWC floats (8-bit values ÷ 255, float values as they
 * are). Up to `concurrency` samples of an async dataset are decoded at once. `allocate` gives the
 * batch's array (every value of it is written), e.g. one recycled from an earlier batch.
 */
export async function loadBatch(
  dataset: Dataset,
  transform: Transform | null,
  seed: number,
  epoch: number,
  step: number,
  indices: Int32Array,
  concurrency: number,
  allocate: (length: number) => Float32Array = newBatchArray,
): Promise<LoaderBatch> {
  const root = epochAugmentationRoot(seed, epoch);
  const b = indices.length;
  const labels = new Int32Array(b);
  let images: Float32Array | null = null;
  let shape: [number, number, number] | null = null;
  let shapeFrom = -1;
  /** Offset of batch position `pos` (dataset index `index`), allocating the batch on first use. */
  const slotOf = (pos: number, index: number, h: number, w: number, c: number): number => {
    if (shape === null) {
      shape = [h, w, c];
      shapeFrom = index;
      images = allocate(b * h * w * c);
    } else if (shape[0] !== h || shape[1] !== w || shape[2] !== c) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `${dataset.name}: image of dataset index ${index} is ${h}×${w}×${c} after the transform, but index ${shapeFrom} in the same batch is ${shape.join('×')}; a batch needs one size (add resize/centerCrop/randomResizedCrop to the transform)`,
        { input: `index ${index}` },
      );
    }
    return pos * h * w * c;
  };
  const put = (pos: number, s: Loaded): void => {
    const index = indices[pos]!;
    if (s.index !== index) {
      throw new CompressError(
        'MISMATCH',
        `${dataset.name}: get(${index}) returned the sample of index ${s.index}; a dataset must return the index it was asked for`,
        { input: dataset.name },
      );
    }
    labels[pos] = s.label;
    const { image } = s;
    if (image === null) return; // written into its slot by the dataset
    const { height: h, width: w, channels: c } = image;
    const o = slotOf(pos, index, h, w, c);
    const per = h * w * c;
    if (image.data.length !== per) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `${dataset.name}: image of dataset index ${index} has ${image.data.length} values, expected ${h}×${w}×${c} = ${per}`,
        { input: `index ${index}` },
      );
    }
    if (image.data instanceof Float32Array) {
      if (s.mirrored) copyFlipped(image.data, images!, o, h, w * c, c);
      else images!.set(image.data, o);
    } else if (s.mirrored) {
      unitFlipped(image.data, images!, o, h, w * c, c);
    } else {
      unit(image.data, images!, o, per);
    }
  };

  let next = 0;
  const run = async (): Promise<void> => {
    for (let pos = next++; pos < b; pos = next++) {
      const index = indices[pos]!;
      const slot = (h: number, w: number, c: number): BatchSlot => ({
        offset: slotOf(pos, index, h, w, c),
        dest: images!,
      });
      const s = loadTransformed(dataset, transform, index, root.fork(index), slot);
      put(pos, s instanceof Promise ? await s : s);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, b)) }, run));
  const [h, w, c] = shape!;
  return { indices: Int32Array.from(indices), images: images!, shape: [b, h, w, c], labels, epoch, step };
}
