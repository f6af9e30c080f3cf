/**
 * The feature-cache file: a self-describing header, then `rows × dim` values in dataset-index
 * order (little-endian float32 or float16), then a table of CRC-32 checksums, one per block of
 * rows.
 *
 * ```
 * offset  size  field (version 2)
 *      0     8  magic "CMPFEATS"
 *      8     4  u32 version (2)
 *     12     4  u32 header size = offset of row 0 (a multiple of 4096)
 *     16     4  u32 dtype (1 = float32, 2 = float16)
 *     20     4  u32 dim
 *     24     8  u64 rows
 *     32     4  u32 length of the JSON metadata
 *     36     4  u32 rows per checksum block (blocks of about 1 MiB)
 *     40     8  u64 done rows: rows 0 … done−1 are written (the resume point)
 *     48     4  u32 CRC-32 of the done rows of the unfinished block (0 when there is none)
 *     52     4  u32 CRC-32 of the checksum table's entries of the finished blocks
 *     56     4  reserved (0)
 *     60     4  u32 CRC-32 of the header: bytes 0–59 and 64 … header size
 *     64     …  JSON metadata (UTF-8): kind, dataset {name, fingerprint, length}, teacher
 *               {fingerprint}, transform; zero padding up to the header size
 *  header size  rows × dim values
 *   after them  checksum table: ⌈rows / block rows⌉ × u32, the CRC-32 of each block's bytes
 * ```
 * Rows (and the table entries of the blocks they finish) are on disk before bytes 40–63 say so,
 * in one write, so a killed writer leaves a file that resumes where it stopped and ends
 * byte-identical to an unbroken run. Version 1 (48-byte fixed header: done rows at 32, metadata
 * length at 40, no checksums) is still read, unverified.
 */

import type { FileHandle } from 'node:fs/promises';
import { CompressError, checksumError, crc32 } from '@compress/core';

export const CACHE_MAGIC = 'CMPFEATS';
export const CACHE_VERSION = 2;
export const CACHE_KIND = 'compress-feature-cache';
const FIXED = 64;
const FIXED_V1 = 48;
const ALIGN = 4096;
/** The largest header accepted (a damaged size field must not make us allocate gigabytes). */
const MAX_HEADER = 64 * 2 ** 20;
/** Byte offset of the part of the header that a writer rewrites after every batch (24 bytes). */
export const PROGRESS_OFFSET = 40;
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

/** Byte offset of the checksum table (right after the rows). */
export function tableOffset(header: Pick<CacheHeader, 'headerBytes' | 'rows' | 'dim' | 'dtype'>): number {
  return header.headerBytes + header.rows * header.dim * bytesPerValue(header.dtype);
}

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

/** Serialises a version-2 header (padded to its full size, checksum included). */
export function encodeHeader(
  header: Omit<CacheHeader, 'version' | 'headerBytes' | 'partialCrc' | 'tableCrc'> &
    Partial<Pick<CacheHeader, 'partialCrc' | 'tableCrc'>>,
): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header.meta));
  const size = Math.ceil((FIXED + json.length) / ALIGN) * ALIGN;
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  bytes.set(new TextEncoder().encode(CACHE_MAGIC), 0);
  view.setUint32(8, CACHE_VERSION, true);
  view.setUint32(12, size, true);
  view.setUint32(16, header.dtype === 'float16' ? 2 : 1, true);
  view.setUint32(20, header.dim, true);
  view.setBigUint64(24, BigInt(header.rows), true);
  view.setUint32(32, json.length, true);
  view.setUint32(36, header.blockRows, true);
  bytes.set(json, FIXED);
  setProgress(bytes, header.doneRows, header.partialCrc ?? 0, header.tableCrc ?? 0);
  return bytes;
}

/**
 * Writes the done-rows marker and the running checksums into `header` (a whole encoded header)
 * and updates its checksum; returns the 24 bytes to write at {@link PROGRESS_OFFSET}.
 */
export function setProgress(
  header: Uint8Array,
  done: number,
  partialCrc: number,
  tableCrc: number,
): Uint8Array {
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  view.setBigUint64(40, BigInt(done), true);
  view.setUint32(48, partialCrc >>> 0, true);
  view.setUint32(52, tableCrc >>> 0, true);
  view.setUint32(HEADER_CRC_OFFSET, headerChecksum(header), true);
  return header.subarray(PROGRESS_OFFSET, FIXED);
}

function headerChecksum(header: Uint8Array): number {
  return crc32(header.subarray(HEADER_CRC_OFFSET + 4), crc32(header.subarray(0, HEADER_CRC_OFFSET)));
}

/**
 * Parses a header from the first bytes of a file: the fixed part alone when `!withMetadata`
 * (enough to learn the header's size), else the whole header, whose checksum is checked first.
 * Throws CORRUPT_INPUT naming `file` when it is not a feature cache or its header is damaged.
 */
export function decodeHeader(bytes: Uint8Array, file: string, withMetadata = true): CacheHeader {
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
    throw corrupt(`expected the magic "${CACHE_MAGIC}", found ${JSON.stringify(magic)}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== 1 && version !== CACHE_VERSION) {
    throw new CompressError(
      'UNSUPPORTED',
      `${file}: feature cache version ${version}, this version of @compress/teacher reads versions 1 and ${CACHE_VERSION} (or the header is damaged)`,
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
  header: Pick<CacheHeader, 'headerBytes' | 'rows' | 'dim' | 'dtype' | 'blockRows'>,
): number {
  return tableOffset(header) + 4 * blockCount(header);
}

/** Reads and parses the header of an open file of `size` bytes (checking its checksum). */
export async function readHeader(handle: FileHandle, size: number, file: string): Promise<CacheHeader> {
  const prefix = new Uint8Array(Math.min(size, FIXED));
  await handle.read(prefix, 0, prefix.length, 0);
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
