import { type FileHandle, mkdir, open, stat, statfs } from 'node:fs/promises';
import { endianness } from 'node:os';
import { dirname } from 'node:path';
import {
  assertFinite,
  type BatchItem,
  CompressError,
  checksumError,
  collate,
  crc32,
  type Dataset,
  type ImageTransform,
  ioError,
  type ProgressEvent,
  type ProgressListener,
  Rng,
  type Teacher,
} from '@compress/core';
import {
  blockSection,
  bytesPerValue,
  CACHE_KIND,
  CACHE_REMEDY,
  CACHE_VERSION,
  type CacheDtype,
  type CacheHeader,
  type CacheMetadata,
  defaultBlockRows,
  encodeHeader,
  type FeatureShardRange,
  fileBytes,
  PROGRESS_OFFSET,
  readHeader,
  readTable,
  setProgress,
  tableOffset,
} from './cache-format.js';
import { encodeHalf, F16_MAX } from './f16.js';

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

type Resolved = Required<
  Omit<
    CacheTeacherFeaturesOptions,
    'transform' | 'onProgress' | 'teacherFingerprint' | 'checksumBlockRows' | 'shard'
  >
> & {
  transform: ImageTransform | undefined;
  checksumBlockRows: number | undefined;
  teacherFingerprint: string;
};

const PHASE = 'cache-teacher';

/**
 * Embeds every image of `dataset` with `teacher` and writes the features to `file`, in dataset-
 * index order, resuming a file that a killed run left unfinished. The step form of
 * {@link cacheTeacherFeatures}: yields a progress event after every batch and returns the summary.
 */
export async function* cacheTeacherFeaturesSteps(
  teacher: Teacher,
  dataset: Dataset,
  file: string,
  options: CacheTeacherFeaturesOptions = {},
): AsyncGenerator<ProgressEvent, CacheSummary> {
  const opts = resolve(teacher, file, options);
  if (endianness() !== 'LE') {
    throw new CompressError('UNSUPPORTED', 'feature caches are little-endian; this machine is big-endian', {
      input: file,
    });
  }
  const { rows, first, shard, meta } = layout(dataset, options, opts);
  const dim = teacher.dim;
  const wanted = { dtype: opts.dtype, dim, rows, meta };
  const rowBytes = dim * bytesPerValue(opts.dtype);

  const existing = await readExisting(file);
  let header: CacheHeader;
  let fresh = true;
  if (existing !== undefined) {
    const why = existing instanceof CompressError ? existing.message : describeDifference(existing, wanted);
    if (why === undefined) {
      header = existing as CacheHeader;
      fresh = false;
    } else if (!opts.overwrite) {
      if (existing instanceof CompressError && existing.message.includes('the file is damaged')) {
        throw new CompressError(existing.code, `cacheTeacherFeatures: ${why} (or pass overwrite: true)`, {
          input: file,
        });
      }
      throw new CompressError(
        existing instanceof CompressError ? existing.code : 'MISMATCH',
        `cacheTeacherFeatures: ${file} already holds ${existing instanceof CompressError ? 'something else' : 'another cache'}: ${why}; delete it or pass overwrite: true`,
        { input: file },
      );
    }
  }
  const blockRows = fresh ? (opts.checksumBlockRows ?? defaultBlockRows(rowBytes)) : header!.blockRows;
  if (fresh)
    header = {
      ...wanted,
      version: CACHE_VERSION,
      headerBytes: 0,
      doneRows: 0,
      blockRows,
      partialCrc: 0,
      tableCrc: 0,
    };
  header = header!;
  let head = encodeHeader(header);
  if (fresh) header.headerBytes = head.length;
  const resumedFrom = header.doneRows;
  const total = fileBytes(header);
  const tableAt = tableOffset(header);
  if (opts.checkFreeSpace && header.doneRows < rows) {
    // what is still to be written: the whole file when fresh, the missing rows and table else
    const needed = fresh ? total : (rows - header.doneRows) * rowBytes + (total - tableAt);
    await assertFreeSpace(file, needed, total);
  }

  let handle: Awaited<ReturnType<typeof open>>;
  try {
    if (fresh) await mkdir(dirname(file), { recursive: true });
    handle = await open(file, fresh ? 'w+' : 'r+');
  } catch (error) {
    throw ioError(error, file, 'open the feature cache');
  }
  try {
    // The running checksums: the finished blocks' table entries and their checksum, and the
    // checksum of the unfinished block's done rows (checked against the file when resuming).
    let tableCrc = 0;
    let partial = 0;
    if (fresh) {
      await handle.write(head, 0, head.length, 0);
      await handle.truncate(total);
      await handle.datasync();
    } else {
      head = (existing as Existing).raw;
      tableCrc = header.tableCrc;
      partial = header.partialCrc;
    }
    yield { phase: PHASE, done: header.doneRows, total: rows, unit: 'images' };
    const rng = new Rng(opts.seed);
    const f32 = new Float32Array(opts.batchSize * dim);
    const f16 = opts.dtype === 'float16' ? new Uint16Array(opts.batchSize * dim) : undefined;
    let checked = false;
    for (let start = header.doneRows; start < rows; start += opts.batchSize) {
      const n = Math.min(opts.batchSize, rows - start);
      const items = await Promise.all(
        Array.from({ length: n }, async (_, i): Promise<BatchItem> => {
          const index = first + start + i;
          const sample = await dataset.get(index);
          const image = opts.transform ? opts.transform(sample.image, rng.fork(index)) : sample.image;
          return { index, image, label: sample.label };
        }),
      );
      const batch = collate(items);
      if (!checked) {
        // Fail before any teacher work when the images cannot fit the model.
        const check = (teacher as { checkImageShape?: (s: readonly [number, number, number]) => void })
          .checkImageShape;
        if (typeof check === 'function')
          check.call(teacher, [batch.shape[1], batch.shape[2], batch.shape[3]]);
        checked = true;
      }
      const features = await teacher.embed(batch);
      if (features.rows !== n || features.dim !== dim || features.data.length !== n * dim) {
        throw new CompressError(
          'SHAPE_MISMATCH',
          `cacheTeacherFeatures: the teacher returned ${features.rows}×${features.dim} features for ${n} images (dataset indices ${first + start}…${first + start + n - 1}), expected ${n}×${dim}`,
          { input: 'teacher' },
        );
      }
      assertFinite(
        features,
        'cacheTeacherFeatures: teacher output',
        (r) => `dataset index ${first + start + r}`,
      );
      let bytes: Uint8Array;
      if (f16 !== undefined) {
        const half = f16.subarray(0, n * dim);
        const over = encodeHalf(features.data, half);
        if (over >= 0) {
          throw new CompressError(
            'INVALID_ARGUMENT',
            `cacheTeacherFeatures: value ${features.data[over]} at dataset index ${first + start + Math.floor(over / dim)}, column ${over % dim} does not fit float16 (|x| ≤ ${F16_MAX}); use dtype 'float32'`,
            { input: 'dtype' },
          );
        }
        bytes = new Uint8Array(half.buffer, half.byteOffset, half.byteLength);
      } else {
        const view = f32.subarray(0, n * dim);
        view.set(features.data);
        bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
      }
      // Checksums of the blocks these rows fall in; the table entries of the blocks they finish.
      const entries = new Uint32Array(Math.ceil(n / blockRows) + 1);
      const firstFinished = Math.floor(start / blockRows);
      let finished = 0;
      for (let r = start; r < start + n; ) {
        const end = Math.min(start + n, (Math.floor(r / blockRows) + 1) * blockRows, rows);
        partial = crc32(bytes.subarray((r - start) * rowBytes, (end - start) * rowBytes), partial);
        if (end % blockRows === 0 || end === rows) {
          entries[finished++] = partial;
          partial = 0;
        }
        r = end;
      }
      const table = new Uint8Array(entries.buffer, 0, finished * 4);
      tableCrc = crc32(table, tableCrc);
      try {
        await handle.write(bytes, 0, bytes.length, header.headerBytes + start * rowBytes);
        if (finished > 0) await handle.write(table, 0, table.length, tableAt + firstFinished * 4);
        await handle.datasync(); // the rows and checksums are on disk before the marker says so
        const progress = setProgress(head, (start + n) * rowBytes, partial, tableCrc);
        await handle.write(progress, 0, progress.length, PROGRESS_OFFSET);
      } catch (error) {
        throw ioError(error, file, 'write the feature cache');
      }
      header.doneRows = start + n;
      yield { phase: PHASE, done: start + n, total: rows, unit: 'images' };
    }
    await handle.datasync();
  } finally {
    await handle.close();
  }
  return {
    file,
    rows,
    dim,
    dtype: opts.dtype,
    bytes: total,
    resumedFrom,
    ...(shard === undefined ? {} : { shard }),
  };
}

/**
 * Embeds every image of `dataset` with `teacher` into the feature-cache file `file` (see
 * {@link CachedTeacher}); a file left unfinished by a killed run is resumed, a finished one is
 * left as it is.
 *
 * ```ts
 * await cacheTeacherFeatures(teacher, train, 'cache/train.f16', { dtype: 'float16' });
 * const cached = await CachedTeacher.open('cache/train.f16', { dataset: train });
 * ```
 */
export async function cacheTeacherFeatures(
  teacher: Teacher,
  dataset: Dataset,
  file: string,
  options: CacheTeacherFeaturesOptions = {},
): Promise<CacheSummary> {
  const steps = cacheTeacherFeaturesSteps(teacher, dataset, file, options);
  for (;;) {
    const next = await steps.next();
    if (next.done) return next.value;
    options.onProgress?.(next.value);
  }
}

function resolve(teacher: Teacher, file: string, options: CacheTeacherFeaturesOptions): Resolved {
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
function layout(
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

/** Bytes in a human form: `1.5 GiB (1610612736 bytes)`. */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${bytes} bytes` : `${v.toFixed(1)} ${units[u]} (${bytes} bytes)`;
}

/**
 * Throws IO naming both numbers when the file system that will hold `file` (its nearest existing
 * ancestor directory) has fewer free bytes than `needed`.
 */
export async function assertFreeSpace(file: string, needed: number, total = needed): Promise<void> {
  let dir = dirname(file);
  for (;;) {
    try {
      const fs = await statfs(dir);
      const free = Number(fs.bavail) * Number(fs.bsize);
      if (free < needed) {
        throw new CompressError(
          'IO',
          `${file} needs ${formatBytes(needed)}${needed === total ? '' : ` more (of ${formatBytes(total)})`}, but its file system has ${formatBytes(free)} free; free some space or write elsewhere`,
          { input: file },
        );
      }
      return;
    } catch (error) {
      if (error instanceof CompressError) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      const parent = dirname(dir);
      if ((code === 'ENOENT' || code === 'ENOTDIR') && parent !== dir) {
        dir = parent;
        continue;
      }
      // a file system that cannot tell its free space: leave it to the writes to fail
      return;
    }
  }
}

type Existing = CacheHeader & { raw: Uint8Array };

/**
 * The header of an existing file (with its bytes), a CompressError when it is not a cache or is
 * damaged, undefined when absent. The checksum table and the done rows of the unfinished block
 * are checked against their checksums, so that a resumed file is sound up to its marker.
 */
async function readExisting(file: string): Promise<Existing | CompressError | undefined> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(error, file, 'inspect');
  }
  let handle: FileHandle | undefined;
  try {
    handle = await open(file, 'r');
    try {
      const header = await readHeader(handle, size, file);
      if (size !== fileBytes(header)) {
        return new CompressError(
          'CORRUPT_INPUT',
          `${file} has ${size} bytes, its header says ${fileBytes(header)}`,
          { input: file },
        );
      }
      const raw = new Uint8Array(header.headerBytes);
      await handle.read(raw, 0, raw.length, 0);
      if (header.version >= 2) await checkResumePoint(handle, header, file);
      return { ...header, raw };
    } catch (error) {
      if (error instanceof CompressError) return error;
      throw error;
    }
  } catch (error) {
    throw ioError(error, file, 'read');
  } finally {
    await handle?.close();
  }
}

/** Checks the checksum table and the done rows of the unfinished block (a resume goes on from them). */
async function checkResumePoint(handle: FileHandle, header: CacheHeader, file: string): Promise<void> {
  await readTable(handle, header, file);
  const block = Math.floor(header.doneRows / header.blockRows);
  const from = block * header.blockRows;
  if (header.doneRows === header.rows || from === header.doneRows) return;
  const rowBytes = header.dim * bytesPerValue(header.dtype);
  const bytes = new Uint8Array((header.doneRows - from) * rowBytes);
  const { bytesRead } = await handle.read(bytes, 0, bytes.length, header.headerBytes + from * rowBytes);
  const computed = crc32(bytes.subarray(0, bytesRead));
  if (computed !== header.partialCrc) {
    throw checksumError(
      file,
      blockSection(header, block, header.doneRows),
      header.partialCrc,
      computed,
      CACHE_REMEDY,
    );
  }
}

function describeDifference(
  have: CacheHeader,
  want: { dtype: CacheDtype; dim: number; rows: number; meta: CacheMetadata },
): string | undefined {
  if (have.version < 2) {
    return `it was written in version ${have.version} of the cache format, which carries no checksums`;
  }
  if (have.version !== CACHE_VERSION && have.doneRows < have.rows) {
    return `it is an unfinished cache in version ${have.version} of the cache format, which this version reads but does not extend (finish it with the version of compress that began it, or make it again)`;
  }
  const d = have.meta.dataset;
  const w = want.meta.dataset;
  if (d.fingerprint !== w.fingerprint) {
    return `it was made from dataset '${d.name}' (fingerprint ${d.fingerprint}), not '${w.name}' (fingerprint ${w.fingerprint})`;
  }
  const hs = have.meta.shard;
  const ws = want.meta.shard;
  if (hs !== undefined || ws !== undefined) {
    const name = (s: FeatureShardRange | undefined) =>
      s === undefined
        ? 'the whole dataset'
        : `shard ${s.index} of ${s.count} (dataset indices ${s.start}…${s.end - 1})`;
    if (hs?.index !== ws?.index || hs?.count !== ws?.count || hs?.start !== ws?.start || hs?.end !== ws?.end)
      return `it holds ${name(hs)}, not ${name(ws)}`;
  }
  if (have.rows !== want.rows)
    return `it has ${have.rows} rows, the dataset '${w.name}' has ${want.rows} images`;
  if (have.meta.teacher.fingerprint !== want.meta.teacher.fingerprint) {
    return `it was made by teacher ${have.meta.teacher.fingerprint}, not ${want.meta.teacher.fingerprint}`;
  }
  if (have.dim !== want.dim) return `its rows have dim ${have.dim}, the teacher's dim is ${want.dim}`;
  if (have.dtype !== want.dtype) return `it stores ${have.dtype}, ${want.dtype} was asked for`;
  if (have.meta.transform !== want.meta.transform) {
    return `it was made with transform '${have.meta.transform}', not '${want.meta.transform}'`;
  }
  return undefined;
}
