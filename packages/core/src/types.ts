/**
 * The data contracts every compress package speaks. See the project's design document:
 * images flow as NHWC float batches, features as row-major float matrices, and a teacher is
 * anything that maps an image batch to a feature matrix.
 */

/** One decoded image, height × width × channels, 8-bit, row-major HWC (as sharp's raw output). */
export interface RawImage {
  data: Uint8Array;
  height: number;
  width: number;
  channels: number;
}

/** An image after `toFloat`: height × width × channels, HWC, values usually in [0, 1]. */
export interface FloatImage {
  data: Float32Array;
  height: number;
  width: number;
  channels: number;
}

/**
 * A per-image transform (augmentation, resize, crop, to-float). Random transforms draw only from
 * `rng`, so the same seed gives the same output.
 */
export type ImageTransform = (
  image: RawImage | FloatImage,
  rng: import('./rng.js').Rng,
) => RawImage | FloatImage;

/** One dataset item. `index` is the dataset index; teacher feature caches are looked up by it. */
export interface Sample {
  index: number;
  image: RawImage;
  label: number;
}

/** A random-access labelled image dataset. */
export interface Dataset {
  /** Human-readable name, e.g. `fashion-mnist/train`. */
  readonly name: string;
  /** Number of samples. */
  readonly length: number;
  /** Class names; `label` indexes into this list. */
  readonly classes: readonly string[];
  /** `[H, W, C]` when every image has the same shape, else `null` (e.g. a folder of photos). */
  readonly imageShape: readonly [number, number, number] | null;
  /**
   * A stable identity of the dataset's content and order (name, size, a digest of labels/files).
   * Feature caches store it and refuse to serve another dataset.
   */
  readonly fingerprint: string;
  /** Loads sample `index` (0 ≤ index < length). */
  get(index: number): Sample | Promise<Sample>;
}

/** A batch of images, NHWC, values in [0, 1] after augmentation and before any normalisation. */
export interface ImageBatch {
  /** Dataset index of every row: B. */
  indices: Int32Array;
  /** Pixel values: B×H×W×C, row-major. */
  images: Float32Array;
  /** `[B, H, W, C]`. */
  shape: [number, number, number, number];
  /** Labels when the dataset has them: B. */
  labels?: Int32Array;
}

/** A row-major matrix of features: `rows` × `dim`. */
export interface FeatureMatrix {
  rows: number;
  dim: number;
  data: Float32Array;
}

/**
 * What the trainer needs from a teacher. Anything that satisfies it can be used: an ONNX model,
 * a feature cache, a TensorFlow.js model, a function calling a remote service.
 */
export interface Teacher {
  /** Feature dimension Dt of `embed`'s output. */
  readonly dim: number;
  /**
   * A stable identity of the teacher (e.g. a digest of the model file and its options); feature
   * caches store it and refuse to serve another teacher. Optional for custom teachers.
   */
  readonly fingerprint?: string;
  /** Embeds a batch: returns B × dim features, row i for `batch.indices[i]`. */
  embed(batch: ImageBatch): Promise<FeatureMatrix>;
  /** Releases native resources. */
  dispose(): void | Promise<void>;
}

/** Progress of a long operation, yielded by step/iterate forms and passed to `onProgress`. */
export interface ProgressEvent {
  /** What is running, e.g. `cache-teacher`, `train`, `kmeans`. */
  phase: string;
  /** Units done so far. */
  done: number;
  /** Units in all, when known. */
  total?: number;
  /** What a unit is: `images`, `steps`, `iterations`. */
  unit?: string;
  /** Running figures worth showing (loss, lr, accuracy…). */
  metrics?: Record<string, number>;
}

export type ProgressListener = (event: ProgressEvent) => void;
