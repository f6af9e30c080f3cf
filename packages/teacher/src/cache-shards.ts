import { type FileHandle, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  CompressError,
  checksumError,
  crc32,
  type FeatureMatrix,
  featureMatrix,
  ioError,
  type ProgressListener,
} from '@compress/core';
import {
  blockCount,
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
  readHeader,
  readTable,
  tableOffset,
} from './cache-format.js';
import { featureShardRange } from './cache-plan.js';
import { decodeHalf } from './f16.js';
import { assertFreeSpace } from './free-space.js';

/** One shard file of a sharded feature cache, as its header describes it. */
export interface FeatureShardInfo extends FeatureShardRange {
  file: string;
  /** Rows of the shard (`end − start`). */
  rows: number;
  /** Rows written so far (`rows` when the shard is finished). */
  doneRows: number;
  done: boolean;
  dim: number;
  dtype: CacheDtype;
  dataset: { name: string; fingerprint: string; length: number };
  /** Fingerprint of the teacher that computed the rows. */
  teacher: string;
  /** The transform the images went through. */
  transform: string;
}

const headers = new WeakMap<FeatureShardInfo, CacheHeader>();

/**
 * Reads the header of one shard file (written by `cacheTeacherFeatures` with `shard`). Throws
 * CORRUPT_INPUT naming the file when it is not a feature cache or is damaged, MISMATCH when it is a
 * whole cache rather than a shard.
 */
export async function inspectFeatureShard(file: string): Promise<FeatureShardInfo> {
  let handle: FileHandle | undefined;
  let header: CacheHeader;
  let size: number;
  try {
    handle = await open(file, 'r');
    size = (await handle.stat()).size;
    header = await readHeader(handle, size, file);
  } catch (error) {
    if (error instanceof CompressError) throw error;
    throw ioError(error, file, 'read the feature shard');
  } finally {
    await handle?.close();
  }
  const shard = header.meta.shard;
  if (shard === undefined || header.version !== CACHE_VERSION) {
    throw new CompressError(
      'MISMATCH',
      `${file} is a whole feature cache, not a shard of one (written without --shards / shard)`,
      { input: file },
    );
  }
  const ok = (n: unknown) => Number.isInteger(n) && (n as number) >= 0;
  if (
    ![shard.index, shard.count, shard.start, shard.end].every(ok) ||
    shard.end - shard.start !== header.rows
  ) {
    throw new CompressError(
      'CORRUPT_INPUT',
      `${file}: its shard record ${JSON.stringify(shard)} does not describe its ${header.rows} rows; ${CACHE_REMEDY}`,
      { input: file },
    );
  }
  if (size !== fileBytes(header)) {
    throw new CompressError(
      'CORRUPT_INPUT',
      `${file} has ${size} bytes, its header says ${fileBytes(header)}: the file is damaged; ${CACHE_REMEDY}`,
      { input: file },
    );
  }
  const info: FeatureShardInfo = {
    file,
    index: shard.index,
    count: shard.count,
    start: shard.start,
    end: shard.end,
    rows: header.rows,
    doneRows: header.doneRows,
    done: header.doneRows === header.rows,
    dim: header.dim,
    dtype: header.dtype,
    dataset: { ...header.meta.dataset },
    teacher: header.meta.teacher.fingerprint,
    transform: header.meta.transform,
  };
  headers.set(info, header);
  return info;
}

export interface CheckFeatureShardsOptions {
  /** The dataset the shards must cover (its fingerprint and size). @default the shards' own */
  dataset?: { name: string; fingerprint: string; length: number };
  /** The teacher fingerprint the rows must come from. @default the shards' own */
  teacher?: string;
  /** The file a missing shard would have, named in the message. @default its index alone */
  expectedFile?: (shard: { index: number; count: number }) => string;
}

/** The checked shards of a complete set, in dataset order. */
export interface FeatureShardSet {
  shards: FeatureShardInfo[];
  /** Images of the dataset (= rows of the merged cache). */
  rows: number;
  dim: number;
  dtype: CacheDtype;
  dataset: { name: string; fingerprint: string; length: number };
  teacher: string;
  transform: string;
}

type Problem = {
  code: 'MISMATCH' | 'NOT_FOUND' | 'CORRUPT_INPUT';
  rank: number;
  text: string;
  input: string;
};

/**
 * Checks that `files` are one complete, consistent, finished shard set: the same dataset, teacher,
 * dtype, dim, transform and shard count in every file; every shard 0…count−1 there exactly once,
 * each covering its own range; every shard finished. Throws one CompressError naming every file
 * (or missing shard) at fault: MISMATCH for a foreign or duplicate shard, NOT_FOUND for a missing
 * or unfinished one, CORRUPT_INPUT for a damaged one.
 */
export async function checkFeatureShards(
  files: readonly string[],
  options: CheckFeatureShardsOptions = {},
): Promise<FeatureShardSet> {
  if (files.length === 0) {
    throw new CompressError('NOT_FOUND', 'no feature shards given', { input: 'shards' });
  }
  const infos = await Promise.all(files.map((f) => inspectFeatureShard(f)));
  return checkShardInfos(infos, options);
}

function checkShardInfos(infos: FeatureShardInfo[], options: CheckFeatureShardsOptions): FeatureShardSet {
  const problems: Problem[] = [];
  // What the set is: as asked, else what most of its files say (a stray file is the odd one out).
  const fields: [string, (i: FeatureShardInfo) => string | number, string | number | undefined][] = [
    [
      'dataset',
      (i) => `'${i.dataset.name}' (fingerprint ${i.dataset.fingerprint})`,
      options.dataset && `'${options.dataset.name}' (fingerprint ${options.dataset.fingerprint})`,
    ],
    ['dataset size', (i) => i.dataset.length, options.dataset?.length],
    ['teacher', (i) => i.teacher, options.teacher],
    ['transform', (i) => i.transform, undefined],
    ['dtype', (i) => i.dtype, undefined],
    ['dim', (i) => i.dim, undefined],
    ['shard count', (i) => i.count, undefined],
  ];
  const foreign = new Set<FeatureShardInfo>();
  const want: Record<string, string | number> = {};
  for (const [name, get, asked] of fields) {
    const value = asked ?? majority(infos.filter((i) => !foreign.has(i)).map(get));
    want[name] = value;
    for (const info of infos) {
      if (foreign.has(info) || get(info) === value) continue;
      foreign.add(info);
      problems.push({
        code: 'MISMATCH',
        rank: 0,
        input: info.file,
        text: `${info.file} belongs to another shard set: its ${name} is ${get(info)}, not ${value}`,
      });
    }
  }
  const good = infos.filter((i) => !foreign.has(i));
  const count = want['shard count'] as number;
  const byIndex = new Map<number, FeatureShardInfo[]>();
  for (const info of good) byIndex.set(info.index, [...(byIndex.get(info.index) ?? []), info]);
  for (const [index, same] of byIndex) {
    if (same.length > 1) {
      problems.push({
        code: 'MISMATCH',
        rank: 1,
        input: same[1]!.file,
        text: `shard ${index} of ${count} appears ${same.length} times: ${same.map((s) => s.file).join(', ')}`,
      });
    }
  }
  const length = good[0]?.dataset.length ?? options.dataset?.length ?? 0;
  for (const info of good) {
    const range = featureShardRange(length, { index: info.index, count: info.count });
    if (range.start !== info.start || range.end !== info.end) {
      problems.push({
        code: 'CORRUPT_INPUT',
        rank: 1,
        input: info.file,
        text: `${info.file} covers dataset indices ${info.start}…${info.end - 1}, shard ${info.index} of ${count} is ${range.start}…${range.end - 1}`,
      });
    }
  }
  const missing: number[] = [];
  for (let i = 0; i < count; i++) if (!byIndex.has(i)) missing.push(i);
  if (missing.length > 0) {
    const name = (index: number) =>
      options.expectedFile ? `shard ${index} (${options.expectedFile({ index, count })})` : `shard ${index}`;
    problems.push({
      code: 'NOT_FOUND',
      rank: 2,
      input: options.expectedFile?.({ index: missing[0]!, count }) ?? `shard ${missing[0]}`,
      text: `${missing.length} of ${count} shards missing: ${missing.map(name).join(', ')}`,
    });
  }
  for (const info of good) {
    if (!info.done) {
      problems.push({
        code: 'NOT_FOUND',
        rank: 3,
        input: info.file,
        text: `${info.file} is unfinished (${info.doneRows} of ${info.rows} rows written; run its shard again to finish it)`,
      });
    }
  }
  if (problems.length > 0) {
    problems.sort((a, b) => a.rank - b.rank);
    throw new CompressError(
      problems[0]!.code,
      `the feature shard set is not complete and consistent: ${problems.map((p) => p.text).join('; ')}`,
      { input: problems[0]!.input },
    );
  }
  const shards = good.sort((a, b) => a.index - b.index);
  const first = shards[0]!;
  return {
    shards,
    rows: first.dataset.length,
    dim: first.dim,
    dtype: first.dtype,
    dataset: { ...first.dataset },
    teacher: first.teacher,
    transform: first.transform,
  };
}

/** The most frequent value (the first seen among equals). */
function majority<T extends string | number>(values: T[]): T {
  const counts = new Map<T, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best = values[0] as T;
  for (const [v, n] of counts) if (n > counts.get(best)!) best = v;
  return best;
}

/** Rows of a shard read block by block, each block checked against its checksum. */
async function* shardBlocks(info: FeatureShardInfo): AsyncGenerator<{ row: number; bytes: Uint8Array }> {
  const header = headers.get(info);
  if (header === undefined)
    throw new CompressError('INVALID_ARGUMENT', 'not a FeatureShardInfo of inspectFeatureShard');
  const rowBytes = header.dim * bytesPerValue(header.dtype);
  let handle: FileHandle | undefined;
  try {
    handle = await open(info.file, 'r');
    const table = await readTable(handle, header, info.file);
    const buffer = new Uint8Array(header.blockRows * rowBytes);
    for (let b = 0; b < table.length; b++) {
      const row = b * header.blockRows;
      const n = Math.min(header.blockRows, header.rows - row);
      const bytes = buffer.subarray(0, n * rowBytes);
      let done = 0;
      while (done < bytes.length) {
        const { bytesRead } = await handle.read(
          bytes,
          done,
          bytes.length - done,
          header.headerBytes + row * rowBytes + done,
        );
        if (bytesRead === 0)
          throw new CompressError('CORRUPT_INPUT', `${info.file}: the rows are cut short`, {
            input: info.file,
          });
        done += bytesRead;
      }
      const computed = crc32(bytes);
      if (computed !== table[b]) {
        throw checksumError(info.file, `rows ${row}–${row + n - 1}`, table[b]!, computed, CACHE_REMEDY);
      }
      yield { row, bytes };
    }
  } catch (error) {
    if (error instanceof CompressError) throw error;
    throw ioError(error, info.file, 'read the feature shard');
  } finally {
    await handle?.close();
  }
}

/**
 * All rows of one finished shard as float32 (float16 shards decoded), every block checked against
 * its checksum. Row r is dataset index `info.start + r`.
 */
export async function readFeatureShard(info: FeatureShardInfo): Promise<FeatureMatrix> {
  const out = featureMatrix(info.rows, info.dim);
  for await (const { row, bytes } of shardBlocks(info)) {
    const copy = bytes.slice();
    const at = out.data.subarray(row * info.dim, row * info.dim + bytes.length / bytesPerValue(info.dtype));
    if (info.dtype === 'float16') decodeHalf(new Uint16Array(copy.buffer), at);
    else at.set(new Float32Array(copy.buffer));
  }
  return out;
}

export interface MergeFeatureCachesOptions extends CheckFeatureShardsOptions {
  /** Rows per checksum block of the merged file. @default as for an unsharded run (1 MiB of rows) */
  checksumBlockRows?: number;
  /** Replace an existing `out` that holds another cache or something else. @default false */
  overwrite?: boolean;
  /** Refuse to start when `out`'s file system has less free space than the file. @default true */
  checkFreeSpace?: boolean;
  /** Called after every block of rows copied, with `phase: 'merge'`, `unit: 'images'`. */
  onProgress?: ProgressListener;
}

export interface MergeSummary {
  file: string;
  rows: number;
  dim: number;
  dtype: CacheDtype;
  /** Size of the merged file. */
  bytes: number;
  /** The shards merged, in dataset order. */
  shards: FeatureShardInfo[];
}

/**
 * Joins a complete shard set (see {@link checkFeatureShards}) into the one feature-cache file `out`,
 * byte-identical to the file an unsharded `cacheTeacherFeatures` run with the same teacher, dataset,
 * transform and dtype writes. Every shard's rows are checked against their checksums on the way;
 * `out` is written beside itself and renamed into place when complete.
 */
export async function mergeFeatureCaches(
  shardFiles: readonly string[],
  out: string,
  options: MergeFeatureCachesOptions = {},
): Promise<MergeSummary> {
  const set = await checkFeatureShards(shardFiles, options);
  const { rows, dim, dtype } = set;
  const rowBytes = dim * bytesPerValue(dtype);
  const blockRows = options.checksumBlockRows ?? defaultBlockRows(rowBytes);
  const meta: CacheMetadata = {
    kind: CACHE_KIND,
    dataset: { name: set.dataset.name, fingerprint: set.dataset.fingerprint, length: set.dataset.length },
    teacher: { fingerprint: set.teacher },
    transform: set.transform,
  };
  const header = { dtype, dim, rows, meta, doneRows: 0, blockRows };
  const headerBytes = encodeHeader(header).length;
  const total = fileBytes({ version: CACHE_VERSION, headerBytes, rows, dim, dtype, blockRows });
  const tableAt = tableOffset({ version: CACHE_VERSION, headerBytes, rows, dim, dtype });
  await checkTarget(out, set, options.overwrite ?? false);
  if (options.checkFreeSpace ?? true) await assertFreeSpace(out, total);

  const temporary = join(dirname(out), `.${basename(out)}.merging`);
  let handle: FileHandle | undefined;
  try {
    await mkdir(dirname(out), { recursive: true });
    handle = await open(temporary, 'w');
    await handle.truncate(total);
    const table = new Uint32Array(blockCount({ rows, blockRows }));
    let partial = 0;
    let done = 0;
    options.onProgress?.({ phase: 'merge', done: 0, total: rows, unit: 'images' });
    for (const shard of set.shards) {
      for await (const { row, bytes } of shardBlocks(shard)) {
        const first = shard.start + row;
        const n = bytes.length / rowBytes;
        await handle.write(bytes, 0, bytes.length, headerBytes + first * rowBytes);
        for (let r = first; r < first + n; ) {
          const end = Math.min(first + n, (Math.floor(r / blockRows) + 1) * blockRows);
          partial = crc32(bytes.subarray((r - first) * rowBytes, (end - first) * rowBytes), partial);
          if (end % blockRows === 0 || end === rows) {
            table[Math.floor((end - 1) / blockRows)] = partial;
            partial = 0;
          }
          r = end;
        }
        done += n;
        options.onProgress?.({ phase: 'merge', done, total: rows, unit: 'images' });
      }
    }
    const tableBytes = new Uint8Array(table.buffer);
    await handle.write(tableBytes, 0, tableBytes.length, tableAt);
    const head = encodeHeader({ ...header, doneRows: rows, partialCrc: 0, tableCrc: crc32(tableBytes) });
    await handle.write(head, 0, head.length, 0);
    await handle.datasync();
    await handle.close();
    handle = undefined;
    await rename(temporary, out);
  } catch (error) {
    await handle?.close().catch(() => {});
    await rm(temporary, { force: true }).catch(() => {});
    if (error instanceof CompressError) throw error;
    throw ioError(error, out, 'write the merged feature cache');
  }
  return { file: out, rows, dim, dtype, bytes: total, shards: set.shards };
}

/**
 * An existing `out` is replaced only when it is a whole cache of the same dataset, teacher,
 * transform, dtype and dim (merged again), or with `overwrite`.
 */
async function checkTarget(out: string, set: FeatureShardSet, overwrite: boolean): Promise<void> {
  if (overwrite) return;
  try {
    await stat(out);
  } catch {
    return;
  }
  let handle: FileHandle | undefined;
  try {
    handle = await open(out, 'r');
    const header = await readHeader(handle, (await handle.stat()).size, out);
    const m = header.meta;
    if (
      m.shard === undefined &&
      m.dataset.fingerprint === set.dataset.fingerprint &&
      m.teacher.fingerprint === set.teacher &&
      m.transform === set.transform &&
      header.dtype === set.dtype &&
      header.dim === set.dim
    )
      return; // the same cache: merged again
  } catch {
    // not a cache
  } finally {
    await handle?.close();
  }
  throw new CompressError(
    'MISMATCH',
    `mergeFeatureCaches: ${out} already exists and is not the feature cache of these shards; delete it or pass overwrite: true`,
    { input: out },
  );
}
