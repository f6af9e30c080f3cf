import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import {
  CompressError,
  checksumError,
  crc32,
  type Dataset,
  type FeatureMatrix,
  featureMatrix,
  type ImageBatch,
  ioError,
  type Teacher,
} from '@compress/core';
import {
  blockSection,
  bytesPerValue,
  CACHE_REMEDY,
  type CacheDtype,
  type CacheHeader,
  fileBytes,
  readHeader,
  readTable,
} from './cache-format.js';
import { decodeHalf } from './f16.js';

export interface CachedTeacherOptions {
  /**
   * The dataset the cache will serve. Its fingerprint and size must be the cache's, else
   * `open` throws MISMATCH naming both. Leave it out only when you check otherwise.
   */
  dataset?: Pick<Dataset, 'name' | 'fingerprint' | 'length'>;
  /**
   * The teacher (or its fingerprint) the features must come from; checked like `dataset`.
   */
  teacher?: string | Pick<Teacher, 'fingerprint'>;
  /**
   * Check every block of rows against its checksum the first time it is read (the first read of
   * a block reads the whole block, about 1 MiB); a mismatch throws CORRUPT_INPUT naming the file
   * and the rows. `false` trusts the file (e.g. to time reads without the checks).
   * @default true
   */
  verify?: boolean;
  /** Receives warnings (a version-1 cache carries no checksums). @default console.warn */
  onWarning?: (message: string) => void;
}

/**
 * A teacher that serves features from a cache file written by `cacheTeacherFeatures`: `embed`
 * looks each row up by `batch.indices` (the images themselves are not used), reading only those
 * rows from disk. A cache from another dataset or teacher, or an unfinished one, is refused.
 *
 * ```ts
 * const teacher = await CachedTeacher.open('cache/train.f16', { dataset: train });
 * const t = await teacher.embed(batch); // rows of batch.indices
 * ```
 */
export class CachedTeacher implements Teacher {
  readonly file: string;
  /** Feature dimension of the rows. */
  readonly dim: number;
  /** Rows in the file (= images of its dataset). */
  readonly rows: number;
  readonly dtype: CacheDtype;
  /** Fingerprint of the teacher that computed the features. */
  readonly fingerprint: string;
  /** The dataset the rows belong to. */
  readonly dataset: { readonly name: string; readonly fingerprint: string; readonly length: number };
  /** The transform the images went through before the teacher. */
  readonly transform: string;

  #fd: number | undefined;
  readonly #offset: number;
  readonly #rowBytes: number;
  readonly #blockRows: number;
  /** Checksum of every block; null when the rows are not checked. */
  readonly #table: Uint32Array | null;
  /** 1 for the blocks checked so far. */
  readonly #verified: Uint8Array;

  private constructor(file: string, fd: number, header: CacheHeader, table: Uint32Array | null) {
    this.file = file;
    this.#fd = fd;
    this.dim = header.dim;
    this.rows = header.rows;
    this.dtype = header.dtype;
    this.fingerprint = header.meta.teacher.fingerprint;
    this.dataset = { ...header.meta.dataset };
    this.transform = header.meta.transform;
    this.#offset = header.headerBytes;
    this.#rowBytes = header.dim * bytesPerValue(header.dtype);
    this.#blockRows = header.blockRows;
    this.#table = table;
    this.#verified = new Uint8Array(table === null ? 0 : table.length);
  }

  /** Opens a finished cache file, checking it against `options.dataset` and `options.teacher`. */
  static async open(file: string, options: CachedTeacherOptions = {}): Promise<CachedTeacher> {
    let header: CacheHeader;
    let size: number;
    let table: Uint32Array | null = null;
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    const prefix = `CachedTeacher ${file}`;
    try {
      handle = await open(file, 'r');
      size = (await handle.stat()).size;
      header = await readHeader(handle, size, file);
      if (size === fileBytes(header) && header.doneRows === header.rows && header.version >= 2) {
        if (options.verify !== false) table = await readTable(handle, header, file);
      }
    } catch (error) {
      if (error instanceof CompressError) throw error;
      const e = ioError(error, file, 'open the feature cache');
      throw new CompressError(e.code, `CachedTeacher: ${e.message}`, { input: file, cause: error });
    } finally {
      await handle?.close();
    }
    if (size !== fileBytes(header)) {
      throw new CompressError(
        'CORRUPT_INPUT',
        `${prefix}: the file has ${size} bytes, its header (${header.rows} rows × ${header.dim} ${header.dtype}) says ${fileBytes(header)}`,
        { input: file },
      );
    }
    if (header.doneRows < header.rows) {
      throw new CompressError(
        'CORRUPT_INPUT',
        `${prefix}: the cache is unfinished (${header.doneRows} of ${header.rows} rows written); run cacheTeacherFeatures again with the same teacher and dataset to finish it`,
        { input: file },
      );
    }
    const shard = header.meta.shard;
    if (shard !== undefined) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `${prefix}: this is shard ${shard.index} of ${shard.count} (dataset indices ${shard.start}…${shard.end - 1}), not a whole cache; merge the shard set first (mergeFeatureCaches, or compress-ssl cache-teacher merge)`,
        { input: file },
      );
    }
    const d = header.meta.dataset;
    const want = options.dataset;
    if (want !== undefined) {
      if (want.fingerprint !== d.fingerprint) {
        throw new CompressError(
          'MISMATCH',
          `${prefix}: the cache was made from dataset '${d.name}' (fingerprint ${d.fingerprint}, ${d.length} images), not from '${want.name}' (fingerprint ${want.fingerprint}, ${want.length} images)`,
          { input: file },
        );
      }
      if (want.length !== header.rows) {
        throw new CompressError(
          'MISMATCH',
          `${prefix}: the cache has ${header.rows} rows, the dataset '${want.name}' has ${want.length} images`,
          { input: file },
        );
      }
    }
    const teacher = typeof options.teacher === 'string' ? options.teacher : options.teacher?.fingerprint;
    if (options.teacher !== undefined && teacher !== header.meta.teacher.fingerprint) {
      throw new CompressError(
        'MISMATCH',
        `${prefix}: the features were made by teacher ${header.meta.teacher.fingerprint}, not by ${teacher ?? 'a teacher without fingerprint'}`,
        { input: file },
      );
    }
    if (header.version < 2) {
      (options.onWarning ?? console.warn)(
        `${prefix}: a version-${header.version} feature cache carries no checksums, its rows are read unchecked; cache the features again (with overwrite) to add them`,
      );
    }
    let fd: number;
    try {
      fd = openSync(file, 'r');
      if (fstatSync(fd).size !== size) throw new Error('the file changed while opening');
    } catch (error) {
      throw ioError(error, file, 'open the feature cache');
    }
    return new CachedTeacher(file, fd, header, table);
  }

  /** Rows `batch.indices` of the cache; the images are not looked at. */
  async embed(batch: ImageBatch): Promise<FeatureMatrix> {
    return this.lookup(batch.indices);
  }

  /** Rows at the given dataset indices, in that order. */
  lookup(indices: ArrayLike<number>): FeatureMatrix {
    const fd = this.#fd;
    if (fd === undefined)
      throw new CompressError('INVALID_ARGUMENT', `CachedTeacher ${this.file}: used after dispose`);
    const n = indices.length;
    const out = featureMatrix(n, this.dim);
    if (n === 0) return out;
    // Read runs of consecutive indices with one positional read each, in file order.
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => indices[a]! - indices[b]!);
    for (const i of order) {
      const index = indices[i]!;
      if (!Number.isInteger(index) || index < 0 || index >= this.rows) {
        throw new CompressError(
          'INVALID_ARGUMENT',
          `CachedTeacher ${this.file}: dataset index ${index} is outside the cache's rows 0…${this.rows - 1}`,
          { input: 'batch.indices' },
        );
      }
    }
    let k = 0;
    while (k < n) {
      let end = k + 1;
      while (end < n && indices[order[end]!]! - indices[order[end - 1]!]! <= 1) end++;
      const first = indices[order[k]!]!;
      const count = indices[order[end - 1]!]! - first + 1;
      const rows = this.#readRows(fd, first, count);
      for (let j = k; j < end; j++) {
        const row = indices[order[j]!]! - first;
        out.data.set(rows.subarray(row * this.dim, (row + 1) * this.dim), order[j]! * this.dim);
      }
      k = end;
    }
    return out;
  }

  /** Rows `first … first + count − 1` in one read (e.g. to evaluate on the whole cache in blocks). */
  read(first: number, count: number): FeatureMatrix {
    const fd = this.#fd;
    if (fd === undefined)
      throw new CompressError('INVALID_ARGUMENT', `CachedTeacher ${this.file}: used after dispose`);
    if (
      !Number.isInteger(first) ||
      !Number.isInteger(count) ||
      first < 0 ||
      count < 0 ||
      first + count > this.rows
    ) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `CachedTeacher ${this.file}: rows ${first}…${first + count - 1} are outside the cache's rows 0…${this.rows - 1}`,
        { input: 'first' },
      );
    }
    return featureMatrix(count, this.dim, this.#readRows(fd, first, count));
  }

  #readRows(fd: number, first: number, count: number): Float32Array {
    // Rows lo … hi − 1 are read: the rows asked for, widened to whole blocks at either end when
    // those blocks have not been checked yet; every unchecked block read is checked.
    let lo = first;
    let hi = first + count;
    const table = this.#table;
    const blockRows = this.#blockRows;
    let b0 = 0;
    let b1 = -1;
    if (table !== null && count > 0) {
      b0 = Math.floor(first / blockRows);
      b1 = Math.floor((hi - 1) / blockRows);
      if (!this.#verified[b0]) lo = b0 * blockRows;
      if (!this.#verified[b1]) hi = Math.min(this.rows, (b1 + 1) * blockRows);
    }
    const rowBytes = this.#rowBytes;
    const bytes = new Uint8Array((hi - lo) * rowBytes);
    let done = 0;
    try {
      while (done < bytes.length) {
        const got = readSync(fd, bytes, done, bytes.length - done, this.#offset + lo * rowBytes + done);
        if (got === 0) throw new Error(`unexpected end of file at row ${lo + Math.floor(done / rowBytes)}`);
        done += got;
      }
    } catch (error) {
      throw ioError(error, this.file, 'read the feature cache');
    }
    if (table !== null) {
      for (let b = b0; b <= b1; b++) {
        if (this.#verified[b]) continue;
        const start = (b * blockRows - lo) * rowBytes;
        const end = (Math.min(this.rows, (b + 1) * blockRows) - lo) * rowBytes;
        const computed = crc32(bytes.subarray(start, end));
        if (computed !== table[b]) {
          throw checksumError(
            this.file,
            blockSection({ rows: this.rows, blockRows }, b),
            table[b]!,
            computed,
            CACHE_REMEDY,
          );
        }
        this.#verified[b] = 1;
      }
    }
    const at = (first - lo) * rowBytes;
    if (this.dtype === 'float32') return new Float32Array(bytes.buffer, at, count * this.dim);
    const values = new Float32Array(count * this.dim);
    decodeHalf(new Uint16Array(bytes.buffer, at, count * this.dim), values);
    return values;
  }

  /** Closes the file. */
  dispose(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}
