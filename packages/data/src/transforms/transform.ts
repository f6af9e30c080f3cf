import type { FloatImage, ImageTransform, RawImage, Rng } from '@compress/core';
import { CompressError } from '@compress/core';
import type { Box } from './resample.js';

/**
 * The serialisable form of a transform: plain data that a worker thread turns back into the same
 * transform ({@link buildTransform}). Every transform made by this package carries its spec.
 *
 * ```json
 * { "kind": "compose", "transforms": [
 *   { "kind": "randomResizedCrop", "size": [224, 224], "scale": [0.08, 1], "ratio": [0.75, 1.3333] },
 *   { "kind": "horizontalFlip", "p": 0.5 },
 *   { "kind": "module", "url": "file:///…/my-transforms.js", "export": "jitter", "options": { "strength": 0.4 } }
 * ] }
 * ```
 */
export type TransformSpec =
  | { kind: 'randomResizedCrop'; size: [number, number]; scale: [number, number]; ratio: [number, number] }
  | { kind: 'horizontalFlip'; p: number }
  | { kind: 'resize'; size: number | [number, number] }
  | { kind: 'centerCrop'; size: [number, number] }
  | { kind: 'toFloat' }
  | { kind: 'normalize'; mean: number[]; std: number[] }
  | { kind: 'grayscaleToRgb' }
  | { kind: 'compose'; transforms: TransformSpec[] }
  | ModuleTransformSpec;

/**
 * A transform of the user's own, rebuilt in each worker by importing `url` and calling its export
 * `export` (default `default`) with `options`; the export returns an {@link ImageTransform}.
 */
export interface ModuleTransformSpec {
  kind: 'module';
  /** Module URL or absolute path (`file:` URLs work everywhere, including workers). */
  url: string;
  /** Name of the factory export. @default 'default' */
  export?: string;
  /** Structured-clonable options passed to the factory. */
  options?: unknown;
}

/**
 * Where a leading crop+resize transform cuts the stored image and what size it resizes to. A
 * dataset that decodes natively (an ImageFolder of photos) can do this inside the decoder.
 */
export interface ResizePlan {
  /** Crop window in stored-image pixels. */
  crop: Box;
  /** Output height. */
  height: number;
  /** Output width. */
  width: number;
}

/** An {@link ImageTransform} that knows its own spec. */
export interface Transform extends ImageTransform {
  /** How to rebuild it in a worker thread; `null` for plain functions (usable with `workers: 0` only). */
  readonly spec: TransformSpec | null;
  /**
   * For crop+resize transforms: the crop and size for a stored image of `width × height`, drawing
   * from `rng` exactly as applying the transform would. Lets a decoder fuse the crop and resize.
   */
  readonly plan?: (width: number, height: number, rng: Rng) => ResizePlan;
  /** For `compose`: the steps in order. */
  readonly steps?: readonly Transform[];
}

export type AnyImage = RawImage | FloatImage;

/** Attaches `spec` (and `plan`) to a transform function. */
export function defineTransform(
  spec: TransformSpec | null,
  apply: (image: AnyImage, rng: Rng) => AnyImage,
  extra: { plan?: Transform['plan']; steps?: readonly Transform[] } = {},
): Transform {
  return Object.assign(apply, { spec, ...extra });
}

/** Wraps a plain {@link ImageTransform} (no spec: main thread only). */
export function asTransform(t: ImageTransform | Transform): Transform {
  return 'spec' in t ? (t as Transform) : defineTransform(null, t);
}

/** `n` or `[h, w]` → `[h, w]`, checked to be positive integers. */
export function sizePair(size: number | readonly [number, number], what: string): [number, number] {
  const pair: [number, number] = typeof size === 'number' ? [size, size] : [size[0], size[1]];
  if (!pair.every((v) => Number.isInteger(v) && v > 0) || (typeof size !== 'number' && size.length !== 2)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${what}: size must be a positive integer or [height, width] of positive integers, got ${JSON.stringify(size)}`,
      { input: 'size' },
    );
  }
  return pair;
}

/** Python's `round` (half to even), which torchvision's size arithmetic uses. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}
