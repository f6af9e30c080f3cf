import type { FloatImage, RawImage } from '@compress/core';

/**
 * Bilinear resampling that reproduces Pillow's `Image.resize(size, Image.BILINEAR)` bit for bit on
 * 8-bit images (Pillow's `libImaging/Resample.c`), which is what torchvision's PIL path calls:
 *
 * - the filter is a triangle whose support widens with the reduction factor (`support = 1 × max(1,
 *   in/out)`), so downscaling is antialiased (averages every source pixel under the output pixel)
 *   and upscaling is ordinary bilinear interpolation with pixel centres at `x + 0.5`;
 * - weights are computed in double precision, normalised per output pixel, then rounded to 22-bit
 *   fixed point; sums start at ½ and are clipped to 0…255 (Pillow's `PRECISION_BITS`, `clip8`);
 * - two passes, horizontal first into an 8-bit intermediate holding only the rows the vertical pass
 *   reads, then vertical; a pass whose size does not change is skipped.
 *
 * Float images use the same weights without fixed point (Pillow's 32-bit `F` mode).
 */

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

interface Coefficients {
  /** Taps per output pixel (the stride of `weights`). */
  ksize: number;
  /** First source pixel and tap count of every output pixel: 2 × out. */
  bounds: Int32Array;
  /** Normalised weights: out × ksize. */
  weights: Float64Array;
  /** The same as 22-bit fixed point (Pillow's `normalize_coeffs_8bpc`). */
  fixed: Int32Array;
}

/** Pillow's `precompute_coeffs` for the bilinear filter over the whole source range [0, inSize). */
function precompute(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 1 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Float64Array(outSize * ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    const o = xx * ksize;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      let t = (x + xmin - center + 0.5) * ss;
      if (t < 0) t = -t;
      const w = t < 1 ? 1 - t : 0;
      weights[o + x] = w;
      ww += w;
    }
    if (ww !== 0) for (let x = 0; x < xmax; x++) weights[o + x] = weights[o + x]! / ww;
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, weights, fixed: fixedPoint(weights) };
}

// Coefficients depend only on (in, out): augmentation reuses a few thousand pairs over and over.
const cache = new Map<number, Coefficients>();
function coefficients(inSize: number, outSize: number): Coefficients {
  const key = inSize * 65536 + outSize;
  let c = cache.get(key);
  if (c === undefined) {
    if (cache.size >= 4096) cache.clear();
    c = precompute(inSize, outSize);
    cache.set(key, c);
  }
  return c;
}

/** Pillow's `normalize_coeffs_8bpc`: weights as 22-bit fixed point, rounded half away from zero. */
function fixedPoint(weights: Float64Array): Int32Array {
  const out = new Int32Array(weights.length);
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i]!;
    out[i] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
  }
  return out;
}

function clip8(v: number): number {
  if (v >= ONE * 256) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS;
}

/** A crop window in source pixels. */
export interface Box {
  top: number;
  left: number;
  height: number;
  width: number;
}

/**
 * Crops `box` out of `image` and resizes it to `height × width` with Pillow's bilinear filter —
 * torchvision's `resized_crop` on a PIL image (`img.crop(box).resize(size, BILINEAR)`).
 * The box must lie inside the image.
 */
export function resizedCrop<T extends RawImage | FloatImage>(
  image: T,
  box: Box,
  height: number,
  width: number,
): T {
  if (box.height === height && box.width === width) return crop(image, box);
  const data =
    image.data instanceof Float32Array
      ? resampleFloat(image.data, image.width, image.channels, box, height, width)
      : resample8(image.data, image.width, image.channels, box, height, width);
  return { data, height, width, channels: image.channels } as T;
}

/** Rows of the crop the vertical pass reads: all of them when the height does not change. */
function rowRange(vert: Coefficients, boxHeight: number, height: number): [number, number] {
  if (boxHeight === height) return [0, height];
  return [vert.bounds[0]!, vert.bounds[height * 2 - 2]! + vert.bounds[height * 2 - 1]!];
}

// The 8-bit and float paths are separate functions so that each stays monomorphic (fast) in V8.

function resample8(
  data: Uint8Array,
  imageWidth: number,
  c: number,
  box: Box,
  height: number,
  width: number,
): Uint8Array {
  const vert = coefficients(box.height, height);
  const [yFirst, yLast] = rowRange(vert, box.height, height);
  // Horizontal pass → rows yFirst…yLast of the crop at the output width (or the source itself).
  let src = data;
  let srcOffset = (box.top * imageWidth + box.left) * c; // where crop row 0 starts in `src`
  let srcStride = imageWidth * c;
  if (box.width !== width) {
    const rows = yLast - yFirst;
    const tmp = new Uint8Array(rows * width * c);
    const hor = coefficients(box.width, width);
    const { ksize, bounds, fixed: k } = hor;
    for (let yy = 0; yy < rows; yy++) {
      const row = srcOffset + (yFirst + yy) * srcStride;
      const oo = yy * width * c;
      for (let xx = 0; xx < width; xx++) {
        const xmax = bounds[xx * 2 + 1]!;
        const ko = xx * ksize;
        const p0 = row + bounds[xx * 2]! * c;
        if (c === 3) {
          let s0 = HALF;
          let s1 = HALF;
          let s2 = HALF;
          for (let x = 0, p = p0; x < xmax; x++, p += 3) {
            const w = k[ko + x]!;
            s0 += src[p]! * w;
            s1 += src[p + 1]! * w;
            s2 += src[p + 2]! * w;
          }
          const o = oo + xx * 3;
          tmp[o] = clip8(s0);
          tmp[o + 1] = clip8(s1);
          tmp[o + 2] = clip8(s2);
        } else {
          for (let ch = 0; ch < c; ch++) {
            let s = HALF;
            for (let x = 0, p = p0 + ch; x < xmax; x++, p += c) s += src[p]! * k[ko + x]!;
            tmp[oo + xx * c + ch] = clip8(s);
          }
        }
      }
    }
    src = tmp;
    srcStride = width * c;
    srcOffset = -yFirst * srcStride;
  }
  if (box.height === height) return src;
  // Vertical pass, one output row at a time: the inner loop runs along the row.
  const rowLen = width * c;
  const out = new Uint8Array(height * rowLen);
  const acc = new Int32Array(rowLen); // sums stay below 2^31: 255 × 2^22 + 2^21
  const { ksize, bounds, fixed: k } = vert;
  for (let yy = 0; yy < height; yy++) {
    const ymin = bounds[yy * 2]!;
    const ymax = bounds[yy * 2 + 1]!;
    acc.fill(HALF);
    for (let y = 0; y < ymax; y++) {
      const w = k[yy * ksize + y]!;
      const row = srcOffset + (ymin + y) * srcStride;
      for (let i = 0; i < rowLen; i++) acc[i] = acc[i]! + src[row + i]! * w;
    }
    const o = yy * rowLen;
    for (let i = 0; i < rowLen; i++) out[o + i] = clip8(acc[i]!);
  }
  return out;
}

function resampleFloat(
  data: Float32Array,
  imageWidth: number,
  c: number,
  box: Box,
  height: number,
  width: number,
): Float32Array {
  const vert = coefficients(box.height, height);
  const [yFirst, yLast] = rowRange(vert, box.height, height);
  let src = data;
  let srcOffset = (box.top * imageWidth + box.left) * c;
  let srcStride = imageWidth * c;
  if (box.width !== width) {
    const rows = yLast - yFirst;
    const tmp = new Float32Array(rows * width * c);
    const { ksize, bounds, weights: k } = coefficients(box.width, width);
    for (let yy = 0; yy < rows; yy++) {
      const row = srcOffset + (yFirst + yy) * srcStride;
      for (let xx = 0; xx < width; xx++) {
        const xmax = bounds[xx * 2 + 1]!;
        const p0 = row + bounds[xx * 2]! * c;
        for (let ch = 0; ch < c; ch++) {
          let s = 0;
          for (let x = 0; x < xmax; x++) s += src[p0 + x * c + ch]! * k[xx * ksize + x]!;
          tmp[(yy * width + xx) * c + ch] = s;
        }
      }
    }
    src = tmp;
    srcStride = width * c;
    srcOffset = -yFirst * srcStride;
  }
  if (box.height === height) return src;
  const rowLen = width * c;
  const out = new Float32Array(height * rowLen);
  const acc = new Float64Array(rowLen);
  const { ksize, bounds, weights: k } = vert;
  for (let yy = 0; yy < height; yy++) {
    const ymin = bounds[yy * 2]!;
    const ymax = bounds[yy * 2 + 1]!;
    acc.fill(0);
    for (let y = 0; y < ymax; y++) {
      const w = k[yy * ksize + y]!;
      const row = srcOffset + (ymin + y) * srcStride;
      for (let i = 0; i < rowLen; i++) acc[i] = acc[i]! + src[row + i]! * w;
    }
    out.set(acc, yy * rowLen);
  }
  return out;
}

/** Copies the window `box` (inside the image) out of `image`. */
export function crop<T extends RawImage | FloatImage>(image: T, box: Box): T {
  const c = image.channels;
  if (box.top === 0 && box.left === 0 && box.height === image.height && box.width === image.width) {
    return image;
  }
  const rowLen = box.width * c;
  const data =
    image.data instanceof Float32Array
      ? new Float32Array(box.height * rowLen)
      : new Uint8Array(box.height * rowLen);
  for (let y = 0; y < box.height; y++) {
    const s = ((box.top + y) * image.width + box.left) * c;
    data.set(image.data.subarray(s, s + rowLen), y * rowLen);
  }
  return { data, height: box.height, width: box.width, channels: c } as T;
}
