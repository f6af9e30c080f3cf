import { CompressError } from '@compress/core';
import { crop, resizedCrop } from './resample.js';
import {
  type AnyImage,
  defineTransform,
  type ResizePlan,
  roundHalfEven,
  sizePair,
  type Transform,
} from './transform.js';

/**
 * Resizes with Pillow's antialiased bilinear filter — torchvision's `Resize(size)` on a PIL image.
 * A number resizes the shorter side to `size` and the longer to `int(size × long / short)`
 * (truncated, as torchvision); `[height, width]` resizes to exactly that. An image already of the
 * target size is returned as it is. Fused into the decoder when it comes first (as
 * {@link randomResizedCrop}).
 */
export function resize(size: number | [number, number]): Transform {
  const fixed = typeof size === 'number' ? null : sizePair(size, 'resize');
  if (fixed === null) sizePair(size as number, 'resize');
  const target = (width: number, height: number): [number, number] => {
    if (fixed) return fixed;
    const s = size as number;
    const short = Math.min(width, height);
    const long = Math.max(width, height);
    const newLong = Math.trunc((s * long) / short);
    return width <= height ? [newLong, s] : [s, newLong];
  };
  const plan = (width: number, height: number): ResizePlan => {
    const [h, w] = target(width, height);
    return { crop: { top: 0, left: 0, height, width }, height: h, width: w };
  };
  return defineTransform(
    { kind: 'resize', size: fixed ?? (size as number) },
    (image) => {
      const p = plan(image.width, image.height);
      return resizedCrop(image, p.crop, p.height, p.width);
    },
    { plan },
  );
}

/**
 * Cuts the central `size` window — torchvision's `CenterCrop(size)`: top/left are
 * `round((H − h) / 2)`, `round((W − w) / 2)` (Python rounding); an image smaller than `size` is first
 * padded with zeros, `⌊Δ/2⌋` before and `⌈Δ/2⌉` after, as torchvision does.
 */
export function centerCrop(size: number | [number, number]): Transform {
  const [ch, cw] = sizePair(size, 'centerCrop');
  return defineTransform({ kind: 'centerCrop', size: [ch, cw] }, (input) => {
    let image = input;
    if (cw > image.width || ch > image.height) {
      const padLeft = cw > image.width ? Math.floor((cw - image.width) / 2) : 0;
      const padTop = ch > image.height ? Math.floor((ch - image.height) / 2) : 0;
      image = pad(image, padTop, padLeft, Math.max(ch, image.height), Math.max(cw, image.width));
      if (image.width === cw && image.height === ch) return image;
    }
    const top = roundHalfEven((image.height - ch) / 2);
    const left = roundHalfEven((image.width - cw) / 2);
    return crop(image, { top, left, height: ch, width: cw });
  });
}

function pad(image: AnyImage, top: number, left: number, height: number, width: number): AnyImage {
  const c = image.channels;
  const data =
    image.data instanceof Float32Array
      ? new Float32Array(height * width * c)
      : new Uint8Array(height * width * c);
  const rowLen = image.width * c;
  for (let y = 0; y < image.height; y++) {
    data.set(image.data.subarray(y * rowLen, (y + 1) * rowLen), ((top + y) * width + left) * c);
  }
  return { data, height, width, channels: c } as AnyImage;
}

/**
 * Mirrors the image left–right with probability `p` — torchvision's `RandomHorizontalFlip(p)`:
 * one uniform draw per image, flipped when it is below `p`. Always draws, so later transforms see
 * the same random stream whatever `p` is.
 */
export function horizontalFlip(p = 0.5): Transform {
  if (!(Number.isFinite(p) && p >= 0 && p <= 1)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `horizontalFlip: p must be a probability in [0, 1], got ${p}`,
      {
        input: 'p',
      },
    );
  }
  return defineTransform({ kind: 'horizontalFlip', p }, (image, rng) =>
    rng.next() < p ? flip(image) : image,
  );
}

/** Mirrors an image left–right (a new buffer). */
export function flip<T extends AnyImage>(image: T): T {
  const { height, width, channels: c } = image;
  const src = image.data;
  const data = src instanceof Float32Array ? new Float32Array(src.length) : new Uint8Array(src.length);
  for (let y = 0; y < height; y++) {
    const row = y * width * c;
    for (let x = 0; x < width; x++) {
      const s = row + x * c;
      const d = row + (width - 1 - x) * c;
      for (let ch = 0; ch < c; ch++) data[d + ch] = src[s + ch]!;
    }
  }
  return { data, height, width, channels: c } as T;
}
