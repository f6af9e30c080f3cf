import { type FileHandle, mkdir, open, stat } from 'node:fs/promises';
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
  ioError,
  type ProgressEvent,
  Rng,
  type Teacher,
} from '@compress/core';
import {
  blockSection,
  bytesPerValue,
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
import { type CacheSummary, type CacheTeacherFeaturesOptions, layout, resolve } from './cache-plan.js';
import { encodeHalf, F16_MAX } from './f16.js';
import { assertFreeSpace } from './free-space.js';

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
