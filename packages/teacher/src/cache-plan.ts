import {
  CompressError,
  type Dataset,
  type ImageTransform,
  type ProgressListener,
  type Teacher,
} from '@compress/core';
import {
  bytesPerValue,
  CACHE_KIND,
  CACHE_VERSION,
  type CacheDtype,
  type CacheMetadata,
  defaultBlockRows,
  encodeHeader,
  type FeatureShardRange,
  fileBytes,
} from './cache-format.js';

export interface CacheTeacherFeaturesOptions {
  /**
   * Applied to every image before the teacher (e.g. resize to the teacher's input size). It gets
   * a random generator derived from `seed` and the image's index, so its output does not depend on
   * batching or on resuming.
   * @default none: images as the dataset stores them, scaled to [0, 1]
   */
  transform?: ImageTransform;
  /**
   * Names the transform in the file's header (required with `transform`); resuming with another
   * name is refused.
   * @default 'none' without a transform
   */
  transformId?: string;
  /** Seed of the transform's random numbers. @default 0 */
  seed?: number;
  /** Images per teacher call; the file's done-rows marker advances after each. @default 256 */
  batchSize?: number;
  /** `'float16'` halves the file; values must fit float16 (|x| ≤ 65504). @default 'float32' */
  dtype?: CacheDtype;
  /**
   * The teacher's identity stored in the header. Required when the teacher has no `fingerprint`
   * (a cache must never be served for another teacher).
   * @default teacher.fingerprint
   */
  teacherFingerprint?: string;
  /**
   * Rows per checksum block of a new file (a resumed file keeps its own).
   * @default as many rows as fit 1 MiB
   */
  checksumBlockRows?: number;
  /**
   * Replace an existing file made for another dataset, teacher, transform or dtype (or by a
   * version of compress whose caches carry no checksums). @default false
   */
  overwrite?: boolean;
  /** Called after every batch (and once at the start) with the rows done so far. */
  onProgress?: ProgressListener;
  /**
   * Write shard `index` of `count` only: the contiguous dataset indices
   * [⌊index·L/count⌋, ⌊(index+1)·L/count⌋) of the dataset's L images, into a file of its own that
   * records its place in the set ({@link mergeFeatureCaches} joins a complete set into the file an
   * unsharded run writes). @default the whole dataset
   */
  shard?: { index: number; count: number };
  /**
   * Refuse to start (IO, naming both numbers) when the file system of `file` has less free space
   * than the bytes still to write. @default true
   */
  checkFreeSpace?: boolean;
}

/** What a cache run will write, before any work ({@link planFeatureCache}). */
export interface FeatureCachePlan {
  file: string;
  /** Rows of the file: the dataset's images, or the shard's. */
  rows: number;
  dim: number;
  dtype: CacheDtype;
  /** Size of the finished file: rows × dim × bytes per value, plus header, padding and checksums. */
  bytes: number;
  /** The shard's place in its set, when sharded. */
  shard?: FeatureShardRange;
}

export interface CacheSummary {
  file: string;
  rows: number;
  dim: number;
  dtype: CacheDtype;
  /** Size of the file. */
  bytes: number;
  /** Rows that were already done when this call started (0 for a fresh file). */
  resumedFrom: number;
  /** The shard written, when sharded. */
  shard?: FeatureShardRange;
}

export type Resolved = Required<
  Omit<
    CacheTeacherFeaturesOptions,
    'transform' | 'onProgress' | 'teacherFingerprint' | 'checksumBlockRows' | 'shard'
  >
> & {
  transform: ImageTransform | undefined;
  checksumBlockRows: number | undefined;
  teacherFingerprint: string;
};

export function resolve(teacher: Teacher, file: string, options: CacheTeacherFeaturesOptions): Resolved {
  const batchSize = options.batchSize ?? 256;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `cacheTeacherFeatures: batchSize must be an integer ≥ 1, got ${batchSize}`,
      {
        input: 'batchSize',
      },
    );
  }
  const dtype = options.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'float16') {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `cacheTeacherFeatures: dtype must be 'float32' or 'float16', got ${JSON.stringify(dtype)}`,
      {
        input: 'dtype',
      },
    );
  }
  if (!Number.isInteger(teacher.dim) || teacher.dim < 1) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `cacheTeacherFeatures: teacher.dim must be a positive integer, got ${teacher.dim}`,
      {
        input: 'teacher',
      },
    );
  }
  const teacherFingerprint = options.teacherFingerprint ?? teacher.fingerprint;
  if (typeof teacherFingerprint !== 'string' || teacherFingerprint.length === 0) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `cacheTeacherFeatures: the teacher has no fingerprint; give it one (a stable string naming the model and its settings) or pass teacherFingerprint, so that ${file} is never served for another teacher`,
      { input: 'teacherFingerprint' },
    );
  }
  const transform = options.transform;
  if (transform !== undefined && !options.transformId) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      'cacheTeacherFeatures: a transform needs a transformId (a name for what it does, e.g. "resize-224"), stored in the file so that a resume with another transform is refused',
      { input: 'transformId' },
    );
  }
  const checksumBlockRows = options.checksumBlockRows;
  if (checksumBlockRows !== undefined && (!Number.isInteger(checksumBlockRows) || checksumBlockRows < 1)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `cacheTeacherFeatures: checksumBlockRows must be an integer ≥ 1, got ${checksumBlockRows}`,
      { input: 'checksumBlockRows' },
    );
  }
  return {
    transform,
    checksumBlockRows,
    transformId: options.transformId ?? 'none',
    seed: options.seed ?? 0,
    batchSize,
    dtype,
    teacherFingerprint,
    overwrite: options.overwrite ?? false,
    checkFreeSpace: options.checkFreeSpace ?? true,
  };
}

/**
 * Shard `index` of `count` of `length` rows: the contiguous range
 * [⌊index·length/count⌋, ⌊(index+1)·length/count⌋). Throws INVALID_ARGUMENT for an index outside
 * 0…count−1, or more shards than rows (a shard would be empty).
 */
export function featureShardRange(
  length: number,
  shard: { index: number; count: number },
): FeatureShardRange {
  const { index, count } = shard;
  if (!Number.isInteger(count) || count < 1) {
    throw new CompressError('INVALID_ARGUMENT', `shard count must be an integer ≥ 1, got ${count}`, {
      input: 'shard.count',
    });
  }
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `shard index must be an integer in 0…${count - 1} (of ${count} shards), got ${index}`,
      { input: 'shard.index' },
    );
  }
  if (count > length) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${count} shards of ${length} rows: some shards would be empty; use at most ${length} shards`,
      { input: 'shard.count' },
    );
  }
  // exact in integers up to 2^53 / count
  return {
    index,
    count,
    start: Math.floor((index * length) / count),
    end: Math.floor(((index + 1) * length) / count),
  };
}

/**
 * The file name of shard `index` of `count` beside a whole cache's name:
 * `teacher-train.fcache` → `teacher-train.shard-0-of-3.fcache` (the extension kept, if any).
 */
export function featureShardFile(file: string, shard: { index: number; count: number }): string {
  const slash = file.lastIndexOf('/');
  const dot = file.lastIndexOf('.');
  const at = dot > slash + 1 ? dot : file.length;
  return `${file.slice(0, at)}.shard-${shard.index}-of-${shard.count}${file.slice(at)}`;
}

/** The rows, their first dataset index, the shard and the header metadata of a cache run. */
export function layout(
  dataset: Dataset,
  options: CacheTeacherFeaturesOptions,
  opts: Resolved,
): { rows: number; first: number; shard: FeatureShardRange | undefined; meta: CacheMetadata } {
  const length = dataset.length;
  if (!Number.isInteger(length) || length < 1) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `cacheTeacherFeatures: dataset '${dataset.name}' has ${length} images, expected at least 1`,
      { input: 'dataset' },
    );
  }
  const shard = options.shard === undefined ? undefined : featureShardRange(length, options.shard);
  const meta: CacheMetadata = {
    kind: CACHE_KIND,
    dataset: { name: dataset.name, fingerprint: dataset.fingerprint, length },
    teacher: { fingerprint: opts.teacherFingerprint },
    transform: opts.transformId,
    ...(shard === undefined ? {} : { shard }),
  };
  return { rows: shard ? shard.end - shard.start : length, first: shard?.start ?? 0, shard, meta };
}

/**
 * What `cacheTeacherFeatures(teacher, dataset, file, options)` will write — rows, dim, dtype and the
 * size of the finished file (rows × dim × bytes per value, plus header and checksums) — without
 * touching the disk or the teacher.
 */
export function planFeatureCache(
  teacher: Teacher,
  dataset: Dataset,
  file: string,
  options: CacheTeacherFeaturesOptions = {},
): FeatureCachePlan {
  const opts = resolve(teacher, file, options);
  const { rows, shard, meta } = layout(dataset, options, opts);
  const dim = teacher.dim;
  const rowBytes = dim * bytesPerValue(opts.dtype);
  const blockRows = opts.checksumBlockRows ?? defaultBlockRows(rowBytes);
  const head = encodeHeader({ dtype: opts.dtype, dim, rows, meta, doneRows: 0, blockRows });
  const bytes = fileBytes({
    version: CACHE_VERSION,
    headerBytes: head.length,
    rows,
    dim,
    dtype: opts.dtype,
    blockRows,
  });
  return { file, rows, dim, dtype: opts.dtype, bytes, ...(shard === undefined ? {} : { shard }) };
}
