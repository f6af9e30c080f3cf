/**
 * The feature-cache file (version 3): a compress container (see `@compress/core`) of kind
 * "compress-feature-cache" whose JSON header holds the dataset {name, fingerprint, length}, the
 * teacher {fingerprint} and the transform, with one blocked section 'rows' (`rows × dim` values in
 * dataset-index order, little-endian float32 or float16, shape [rows, dim]) whose CRC-32s, one per
 * block of about 1 MiB of rows, sit in a table after the rows. The header region is padded to
 * 4096 bytes, so the rows start on a page.
 *
 * ```
 * offset        size  field
 *      0           8  magic "COMPRESS", then the container's version, header size, JSON length
 *     24           8  u64 bytes of rows written (the resume point, in bytes)
 *     32           4  u32 CRC-32 of the written rows of the unfinished block (0 when there is none)
 *     36           4  u32 CRC-32 of the checksum table's entries of the finished blocks
 *     60           4  u32 CRC-32 of the header
 *     64           …  JSON header, zero padding up to the header size (a multiple of 4096)
 *  header size     …  rows × dim values (the section 'rows')
 *  after them, at a multiple of 64: the checksum table, ⌈rows / block rows⌉ × u32
 * ```
 * Rows (and the table entries of the blocks they finish) are on disk before bytes 24–63 say so, in
 * one write, so a killed writer leaves a file that resumes where it stopped and ends byte-identical
 * to an unbroken run. The "CMPFEATS" layouts of version 2 (64-byte fixed header with the same
 * checksums, table right after the rows) and version 1 (48-byte fixed header, no checksums, read
 * unverified) are still read.
 */

import type { FileHandle } from 'node:fs/promises';
import {
  alignContainer,
  CONTAINER_PROGRESS_OFFSET,
  CompressError,
  type ContainerExpectation,
  checksumError,
  containerHeaderSize,
  crc32,
  decodeContainerHeader,
  isContainer,
  layoutBlockedContainer,
  setContainerProgress,
} from '@compress/core';

/** The magic of the legacy layouts (versions 1 and 2). */
export const CACHE_MAGIC = 'CMPFEATS';
export const CACHE_VERSION = 3;
const LEGACY_VERSION = 2;
export const CACHE_KIND = 'compress-feature-cache';
const FIXED = 64;
const FIXED_V1 = 48;
const ALIGN = 4096;
/** The largest header accepted (a damaged size field must not make us allocate gigabytes). */
const MAX_HEADER = 64 * 2 ** 20;
/** Byte offset of the part of the header that a writer rewrites after every batch (40 bytes). */
export const PROGRESS_OFFSET = CONTAINER_PROGRESS_OFFSET;
const HEADER_CRC_OFFSET = 60;
/** Target size of a checksum block. */
export const BLOCK_BYTES = 2 ** 20;

/** What to do with a damaged cache, in every message about one. */
export const CACHE_REMEDY =
  'delete it and cache the features again (compress-ssl cache-teacher, or cacheTeacherFeatures)';

export type CacheDtype = 'float32' | 'float16';

export interface CacheMetadata {
  kind: typeof CACHE_KIND;
  dataset: { name: string; fingerprint: string; length: number };
  teacher: { fingerprint: string };
  /** Identity of the transform applied to every image before the teacher (`none` when none). */
  transform: string;
  /**
   * A shard's place in its set: shard `index` of `count`, holding the dataset indices
   * [`start`, `end`) (its rows are those, in order). Absent in a whole cache.
   */
  shard?: FeatureShardRange;
}

/** Shard `index` of `count` of a dataset: the contiguous dataset indices [`start`, `end`). */
export interface FeatureShardRange {
  index: number;
  count: number;
  start: number;
  end: number;
}

export interface CacheHeader {
  version: number;
  headerBytes: number;
  dtype: CacheDtype;
  dim: number;
  rows: number;
  doneRows: number;
  /** Rows per checksum block; 0 in a version-1 file (no checksums). */
  blockRows: number;
  /** CRC-32 of the done rows of the unfinished block. */
  partialCrc: number;
  /** CRC-32 of the table entries of the finished blocks. */
  tableCrc: number;
  meta: CacheMetadata;
}

export function bytesPerValue(dtype: CacheDtype): number {
  return dtype === 'float16' ? 2 : 4;
}

/** Rows per checksum block for rows of `rowBytes` bytes: as many as fit {@link BLOCK_BYTES}. */
export function defaultBlockRows(rowBytes: number): number {
  return Math.max(1, Math.floor(BLOCK_BYTES / rowBytes));
}

/** Number of checksum blocks. */
export function blockCount(header: Pick<CacheHeader, 'rows' | 'blockRows'>): number {
  return header.blockRows === 0 ? 0 : Math.ceil(header.rows / header.blockRows);
}

/** Byte offset of the checksum table (after the rows; at a multiple of 64 from version 3). */
export function tableOffset(
  header: Pick<CacheHeader, 'version' | 'headerBytes' | 'rows' | 'dim' | 'dtype'>,
): number {
  const rows = header.rows * header.dim * bytesPerValue(header.dtype);
  return header.headerBytes + (header.version >= CACHE_VERSION ? alignContainer(rows) : rows);
}

const EXPECT: ContainerExpectation = {
  kind: CACHE_KIND,
  versions: [CACHE_VERSION],
  what: 'compress feature cache',
  reader: '@compress/teacher',
  remedy: CACHE_REMEDY,
};

/** The section name of block `b` in messages: its rows. */
export function blockSection(
  header: Pick<CacheHeader, 'rows' | 'blockRows'>,
  b: number,
  end?: number,
): string {
  const first = b * header.blockRows;
  const last = Math.min(header.rows, end ?? first + header.blockRows) - 1;
  return `rows ${first}–${last}`;
}

/** Serialises a version-3 header region (padded to 4096 bytes, checksum included). */
export function encodeHeader(
  header: Omit<CacheHeader, 'version' | 'headerBytes' | 'partialCrc' | 'tableCrc'> &
    Partial<Pick<CacheHeader, 'partialCrc' | 'tableCrc'>>,
): Uint8Array {
  const rowBytes = header.dim * bytesPerValue(header.dtype);
  const { kind: _kind, ...fields } = header.meta;
  const { region } = layoutBlockedContainer(
    CACHE_KIND,
    CACHE_VERSION,
    fields,
    {
      name: 'rows',
      bytes: header.rows * rowBytes,
      blockBytes: header.blockRows * rowBytes,
      dtype: header.dtype,
      shape: [header.rows, header.dim],
    },
    ALIGN,
  );
  setProgress(region, header.doneRows * rowBytes, header.partialCrc ?? 0, header.tableCrc ?? 0);
  return region;
}

/**
 * Writes the bytes of rows written and the running checksums into `header` (a whole encoded
 * version-3 header) and updates its checksum; returns the 40 bytes to write at {@link PROGRESS_OFFSET}.
 */
export function setProgress(
  header: Uint8Array,
  doneBytes: number,
  partialCrc: number,
  tableCrc: number,
): Uint8Array {
  return setContainerProgress(header, { bytes: doneBytes, partialCrc, tableCrc });
}

function headerChecksum(header: Uint8Array): number {
  return crc32(header.subarray(HEADER_CRC_OFFSET + 4), crc32(header.subarray(0, HEADER_CRC_OFFSET)));
}

/** Parses a version-3 header region (its checksum, kind and version checked by the container). */
function decodeContainerCache(bytes: Uint8Array, file: string): CacheHeader {
  const corrupt = (why: string) =>
    new CompressError('CORRUPT_INPUT', `${file} is not a compress feature cache: ${why}`, { input: file });
  const { header, progress, headerBytes } = decodeContainerHeader(bytes, file, EXPECT);
  const rows = header.sections[0];
  const shape = rows?.shape;
  if (
    header.sections.length !== 1 ||
    rows?.name !== 'rows' ||
    rows.offset !== 0 ||
    (rows.dtype !== 'float32' && rows.dtype !== 'float16') ||
    !Array.isArray(shape) ||
    shape.length !== 2
  ) {
    throw corrupt(`expected one section 'rows' of float32 or float16 [rows, dim]`);
  }
  const [count, dim] = shape as [number, number];
  const rowBytes = dim * bytesPerValue(rows.dtype);
  if (dim < 1) throw corrupt('dim is 0');
  if (rows.bytes !== count * rowBytes)
    throw corrupt(`section 'rows' has ${rows.bytes} bytes, not ${count} × ${dim}`);
  const blockBytes = rows.blockBytes ?? 0;
  if (blockBytes < rowBytes || blockBytes % rowBytes !== 0)
    throw corrupt('its checksum blocks are not whole rows');
  if (rows.table !== alignContainer(rows.bytes))
    throw corrupt('its checksum table is not right after the rows');
  if (progress.bytes % rowBytes !== 0 || progress.bytes > rows.bytes) {
    throw corrupt(`${progress.bytes} bytes of rows marked done of ${rows.bytes}`);
  }
  const meta = {
    kind: CACHE_KIND,
    dataset: header.dataset,
    teacher: header.teacher,
    transform: header.transform,
    ...(header.shard === undefined ? {} : { shard: header.shard }),
  } as CacheMetadata;
  if (typeof meta.dataset?.fingerprint !== 'string' || typeof meta.teacher?.fingerprint !== 'string') {
    throw corrupt('its metadata lacks dataset or teacher fingerprints');
  }
  return {
    version: header.version,
    headerBytes,
    dtype: rows.dtype,
    dim,
    rows: count,
    doneRows: progress.bytes / rowBytes,
    blockRows: blockBytes / rowBytes,
    partialCrc: progress.partialCrc,
    tableCrc: progress.tableCrc,
    meta,
  };
}

/**
 * Parses a header from the first bytes of a file: the fixed part alone when `!withMetadata`
 * (enough to learn the header's size), else the whole header, whose checksum is checked first.
 * Throws CORRUPT_INPUT naming `file` when it is not a feature cache or its header is damaged.
 */
export function decodeHeader(bytes: Uint8Array, file: string, withMetadata = true): CacheHeader {
  if (isContainer(bytes)) {
    // a version-3 header is only parsed whole (readHeader learns its size from the container)
    if (!withMetadata) containerHeaderSize(bytes, file, EXPECT);
    return decodeContainerCache(bytes, file);
  }
  return decodeLegacyHeader(bytes, file, withMetadata);
}

/** Parses the header of the "CMPFEATS" layouts of versions 1 and 2. */
function decodeLegacyHeader(bytes: Uint8Array, file: string, withMetadata: boolean): CacheHeader {
  const corrupt = (why: string) =>
    new CompressError('CORRUPT_INPUT', `${file} is not a compress feature cache: ${why}`, { input: file });
  const damaged = (why: string) =>
    new CompressError(
      'CORRUPT_INPUT',
      `${file}: section 'header' is damaged (${why}): the file is damaged; ${CACHE_REMEDY}`,
      { input: file },
    );
  if (bytes.length < FIXED_V1)
    throw corrupt(`it has ${bytes.length} bytes, fewer than the ${FIXED_V1}-byte header`);
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== CACHE_MAGIC)
    throw corrupt(
      `expected the magic "COMPRESS" (or "${CACHE_MAGIC}" of versions 1 and 2), found ${JSON.stringify(magic)}`,
    );
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== 1 && version !== LEGACY_VERSION) {
    throw new CompressError(
      'UNSUPPORTED',
      `${file}: feature cache version ${version} in the "${CACHE_MAGIC}" layout, this version of @compress/teacher reads versions 1 and ${LEGACY_VERSION} of that layout and version ${CACHE_VERSION} in the compress container (or the header is damaged)`,
      { input: file },
    );
  }
  const v1 = version === 1;
  const fixed = v1 ? FIXED_V1 : FIXED;
  if (bytes.length < fixed)
    throw corrupt(`it has ${bytes.length} bytes, fewer than the ${fixed}-byte header`);
  const headerBytes = view.getUint32(12, true);
  const jsonLength = view.getUint32(v1 ? 40 : 32, true);
  if (!v1) {
    if (headerBytes % ALIGN !== 0 || headerBytes < FIXED || headerBytes > MAX_HEADER) {
      throw damaged(`header size ${headerBytes}, expected a multiple of ${ALIGN} up to ${MAX_HEADER}`);
    }
    if (withMetadata) {
      if (bytes.length < headerBytes) throw damaged('the header is cut short');
      const whole = bytes.subarray(0, headerBytes);
      const stored = view.getUint32(HEADER_CRC_OFFSET, true);
      const computed = headerChecksum(whole);
      if (stored !== computed) throw checksumError(file, 'header', stored, computed, CACHE_REMEDY);
    }
  }
  // (a version-2 header's fields are checked after its checksum, when the whole header is here)
  const checkFields = v1 || withMetadata;
  const code = view.getUint32(16, true);
  const dim = view.getUint32(20, true);
  const rows = Number(view.getBigUint64(24, true));
  const doneRows = Number(view.getBigUint64(v1 ? 32 : 40, true));
  const blockRows = v1 ? 0 : view.getUint32(36, true);
  if (checkFields) {
    if (code !== 1 && code !== 2) throw corrupt(`unknown dtype code ${code} (1 = float32, 2 = float16)`);
    if (dim < 1) throw corrupt('dim is 0');
    if (doneRows > rows) throw corrupt(`${doneRows} rows marked done of ${rows}`);
    if (fixed + jsonLength > headerBytes) throw corrupt('the metadata runs past the header');
    if (!v1 && blockRows < 1) throw corrupt('0 rows per checksum block');
  }
  const header = {
    version,
    headerBytes,
    dtype: (code === 2 ? 'float16' : 'float32') as CacheDtype,
    dim,
    rows,
    doneRows,
    blockRows,
    partialCrc: v1 ? 0 : view.getUint32(48, true),
    tableCrc: v1 ? 0 : view.getUint32(52, true),
    meta: undefined as never as CacheMetadata,
  };
  if (!withMetadata) return header;
  if (bytes.length < fixed + jsonLength) throw corrupt('the header is cut short');
  let meta: CacheMetadata;
  try {
    meta = JSON.parse(new TextDecoder().decode(bytes.subarray(fixed, fixed + jsonLength))) as CacheMetadata;
  } catch (error) {
    throw corrupt(`its metadata is not JSON (${(error as Error).message})`);
  }
  if (
    meta?.kind !== CACHE_KIND ||
    typeof meta.dataset?.fingerprint !== 'string' ||
    typeof meta.teacher?.fingerprint !== 'string'
  ) {
    throw corrupt(`its metadata lacks kind "${CACHE_KIND}", dataset or teacher fingerprints`);
  }
  header.meta = meta;
  return header;
}

/** Expected size of a complete cache file (rows and, from version 2, the checksum table). */
export function fileBytes(
  header: Pick<CacheHeader, 'version' | 'headerBytes' | 'rows' | 'dim' | 'dtype' | 'blockRows'>,
): number {
  return tableOffset(header) + 4 * blockCount(header);
}

/** Reads and parses the header of an open file of `size` bytes (checking its checksum). */
export async function readHeader(handle: FileHandle, size: number, file: string): Promise<CacheHeader> {
  const prefix = new Uint8Array(Math.min(size, FIXED));
  await handle.read(prefix, 0, prefix.length, 0);
  if (isContainer(prefix)) {
    // checks magic, version and sizes before trusting the lengths
    const whole = new Uint8Array(Math.min(size, containerHeaderSize(prefix, file, EXPECT)));
    await handle.read(whole, 0, whole.length, 0);
    return decodeContainerCache(whole, file);
  }
  // checks magic, version and sizes before trusting the lengths
  const fixed = decodeHeader(prefix, file, false);
  const length =
    fixed.version === 1 ? FIXED_V1 + new DataView(prefix.buffer).getUint32(40, true) : fixed.headerBytes;
  const whole = new Uint8Array(Math.min(size, length));
  await handle.read(whole, 0, whole.length, 0);
  return decodeHeader(whole, file);
}

/**
 * Reads the checksum table's entries of the blocks finished in `header` (all of them in a
 * finished file) and checks them against the table's checksum.
 */
export async function readTable(handle: FileHandle, header: CacheHeader, file: string): Promise<Uint32Array> {
  const table = new Uint32Array(blockCount(header));
  const finished =
    header.doneRows === header.rows ? table.length : Math.floor(header.doneRows / header.blockRows);
  const bytes = new Uint8Array(table.buffer, 0, finished * 4);
  let done = 0;
  while (done < bytes.length) {
    const { bytesRead } = await handle.read(bytes, done, bytes.length - done, tableOffset(header) + done);
    if (bytesRead === 0)
      throw new CompressError('CORRUPT_INPUT', `${file}: the checksum table is cut short`, { input: file });
    done += bytesRead;
  }
  const computed = crc32(bytes);
  if (computed !== header.tableCrc)
    throw checksumError(file, 'checksum table', header.tableCrc, computed, CACHE_REMEDY);
  return table;
}
