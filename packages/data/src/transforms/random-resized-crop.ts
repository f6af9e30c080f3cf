import { CompressError, type Rng } from '@compress/core';
import type { Box } from './resample.js';
import { resizedCrop } from './resample.js';
import { defineTransform, type ResizePlan, roundHalfEven, sizePair, type Transform } from './transform.js';

export interface RandomResizedCropOptions {
  /**
   * Range of the crop's area as a fraction of the image's area.
   * @default [0.08, 1] — torchvision's and the paper's (MoCo/CompRess ImageNet training).
   */
  scale?: [number, number];
  /**
   * Range of the crop's aspect ratio (width / height), sampled log-uniformly.
   * @default [3/4, 4/3] — torchvision's default.
   */
  ratio?: [number, number];
}

export const defaultRandomResizedCropOptions: Required<RandomResizedCropOptions> = {
  scale: [0.08, 1],
  ratio: [3 / 4, 4 / 3],
};

/**
 * torchvision's `RandomResizedCrop.get_params`, drawing from `rng`:
 * up to 10 attempts of `area = A·U(scale)`, `ratio = exp(U(log ratio))`, `w = round(√(area·ratio))`,
 * `h = round(√(area/ratio))` (Python rounding, half to even); the first with `0 < w ≤ W` and
 * `0 < h ≤ H` takes `top = randint(0, H−h)`, `left = randint(0, W−w)`. If all 10 fail, the centre
 * crop of the whole image with its aspect ratio clamped into `ratio` (the fallback).
 */
export function randomResizedCropBox(
  width: number,
  height: number,
  rng: Rng,
  scale: readonly [number, number] = defaultRandomResizedCropOptions.scale,
  ratio: readonly [number, number] = defaultRandomResizedCropOptions.ratio,
): Box {
  const area = height * width;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLo, logHi));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(height - h + 1);
      const left = rng.int(width - w + 1);
      return { top, left, height: h, width: w };
    }
  }
  // Fallback: central crop.
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = roundHalfEven(w / ratio[0]);
  else if (inRatio > ratio[1]) w = roundHalfEven(h * ratio[1]);
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/**
 * Crops a random part of the image and resizes it to `size` — torchvision's
 * `RandomResizedCrop(size, scale, ratio)` with bilinear interpolation.
 *
 * Sampling is torchvision's (see {@link randomResizedCropBox}); every random number comes from the
 * `rng` passed in, so the same seed gives the same crops. The resize is Pillow's antialiased
 * bilinear filter, reproduced bit for bit on 8-bit images (torchvision's PIL path), so crops
 * smaller than `size` are interpolated and larger ones averaged.
 *
 * When it is the first transform and the dataset decodes natively (an ImageFolder of photos), the
 * crop and resize run inside sharp's decoder instead: the same crop window from the same random
 * numbers, resized with libvips' linear kernel (also an antialiased triangle filter; pixel values
 * within about one grey level of Pillow's).
 */
export function randomResizedCrop(
  size: number | [number, number],
  options: RandomResizedCropOptions = {},
): Transform {
  const [outH, outW] = sizePair(size, 'randomResizedCrop');
  const { scale, ratio } = { ...defaultRandomResizedCropOptions, ...options };
  checkRange(scale, 'scale', true);
  checkRange(ratio, 'ratio', false);
  const plan = (width: number, height: number, rng: Rng): ResizePlan => ({
    crop: randomResizedCropBox(width, height, rng, scale, ratio),
    height: outH,
    width: outW,
  });
  return defineTransform(
    {
      kind: 'randomResizedCrop',
      size: [outH, outW],
      scale: [scale[0], scale[1]],
      ratio: [ratio[0], ratio[1]],
    },
    (image, rng) => {
      const p = plan(image.width, image.height, rng);
      return resizedCrop(image, p.crop, p.height, p.width);
    },
    { plan },
  );
}

function checkRange(range: readonly [number, number], name: string, unitLower: boolean): void {
  const ok =
    Array.isArray(range) &&
    range.length === 2 &&
    range.every((v) => Number.isFinite(v) && v > 0) &&
    range[0] <= range[1] &&
    (!unitLower || range[0] <= 1);
  if (!ok) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `randomResizedCrop: ${name} must be [min, max] with 0 < min ≤ max${unitLower ? ' and min ≤ 1' : ''}, got ${JSON.stringify(range)}`,
      { input: name },
    );
  }
}
