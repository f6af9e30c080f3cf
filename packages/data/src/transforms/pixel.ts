import { CompressError, type FloatImage } from '@compress/core';
import { defineTransform, type Transform } from './transform.js';

/**
 * 8-bit values to floats in [0, 1] (÷ 255) — torchvision's `ToTensor` without the HWC→CHW
 * transpose (batches here are NHWC). A float image passes through unchanged. The loader does this
 * itself when batching 8-bit images, so it is only needed before float-only transforms
 * ({@link normalize}).
 */
export function toFloat(): Transform {
  return defineTransform({ kind: 'toFloat' }, (image) => {
    if (image.data instanceof Float32Array) return image;
    const src = image.data;
    const data = new Float32Array(src.length);
    for (let i = 0; i < src.length; i++) data[i] = src[i]! / 255;
    return { data, height: image.height, width: image.width, channels: image.channels };
  });
}

/**
 * `(x − mean[c]) / std[c]` per channel — torchvision's `Normalize(mean, std)`; one value applies to
 * every channel. Needs a float image (put {@link toFloat} first). Note: compress's batches are
 * meant to stay in [0, 1]; teachers and students normalise themselves, so use this only for a
 * consumer that expects normalised input.
 */
export function normalize(mean: number[], std: number[]): Transform {
  const ok = (a: unknown) => Array.isArray(a) && a.length > 0 && a.every((v) => Number.isFinite(v));
  if (!ok(mean) || !ok(std) || mean.length !== std.length || std.some((v) => v === 0)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `normalize: mean and std must be non-empty arrays of finite numbers of the same length with no zero std, got mean ${JSON.stringify(mean)}, std ${JSON.stringify(std)}`,
      { input: 'std' },
    );
  }
  return defineTransform({ kind: 'normalize', mean: [...mean], std: [...std] }, (image) => {
    if (!(image.data instanceof Float32Array)) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        'normalize: expected a float image, found 8-bit values; put toFloat() before normalize()',
        { input: 'normalize' },
      );
    }
    const c = image.channels;
    if (mean.length !== 1 && mean.length !== c) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `normalize: the image has ${c} channels, expected ${mean.length} (the length of mean/std) or mean/std of length 1`,
        { input: 'mean' },
      );
    }
    const src = image.data;
    const data = new Float32Array(src.length);
    for (let i = 0; i < src.length; i++) {
      const ch = mean.length === 1 ? 0 : i % c;
      data[i] = (src[i]! - mean[ch]!) / std[ch]!;
    }
    return { data, height: image.height, width: image.width, channels: c } satisfies FloatImage;
  });
}

/**
 * One grey channel copied into three (Pillow's `convert('RGB')` of an `L` image) for teachers and
 * students that take RGB; a 3-channel image passes through.
 */
export function grayscaleToRgb(): Transform {
  return defineTransform({ kind: 'grayscaleToRgb' }, (image) => {
    if (image.channels === 3) return image;
    if (image.channels !== 1) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `grayscaleToRgb: expected an image with 1 channel (or 3, passed through), found ${image.channels}`,
        { input: 'grayscaleToRgb' },
      );
    }
    const src = image.data;
    const data =
      src instanceof Float32Array ? new Float32Array(src.length * 3) : new Uint8Array(src.length * 3);
    for (let i = 0; i < src.length; i++) {
      const v = src[i]!;
      data[i * 3] = v;
      data[i * 3 + 1] = v;
      data[i * 3 + 2] = v;
    }
    return { data, height: image.height, width: image.width, channels: 3 } as typeof image;
  });
}
