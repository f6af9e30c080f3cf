/**
 * The feature-cache file: a self-describing header, then `rows × dim` values in dataset-index
 * order (little-endian float32 or float16).
 *
 * ```
 * offset  size  field
 *      0     8  magic "CMPFEATS"
 *      8     4  u32 version (1)
 *     12     4  u32 header size = offset of row 0 (a multiple of 4096)
 *     16     4  u32 dtype (1 = float32, 2 = float16)
 *     20     4  u32 dim
 *     24     8  u64 rows
 *     32     8  u64 done rows: rows 0 … done−1 are written (the resume point)
 *     40     4  u32 length of the JSON metadata
 *     44     4  reserved (0)
 *     48     …  JSON metadata (UTF-8): kind, dataset {name, fingerprint, length}, teacher
 *               {fingerprint}, transform; zero padding up to the header size
 * ```
 * Rows are written before the done-rows marker moves past them, so a killed writer leaves a file
 * that resumes where it stopped and ends byte-identical to an unbroken run.
 */

import type { FileHandle } from 'node:fs/promises';
import { CompressError } from '@compress/core';

export const CACHE_MAGIC = 'CMPFEATS';
export const CACHE_VERSION = 1;
export const CACHE_KIND = 'compress-feature-cache';
const FIXED = 48;
const ALIGN = 4096;
/** Byte offset of the done-rows marker. */
export const DONE_OFFSET = 32;

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
  meta: CacheMetadata;
}

export function bytesPerValue(dtype: CacheDtype): number {
  return dtype === 'float16' ? 2 : 4;
}

/** Serialises a header (padded to its full size). */
export function encodeHeader(header: Omit<CacheHeader, 'version' | 'headerBytes'>): Uint8Array {
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
  view.setBigUint64(DONE_OFFSET, BigInt(header.doneRows), true);
  view.setUint32(40, json.length, true);
  bytes.set(json, FIXED);
  return bytes;
}

/** The done-rows marker as the 8 bytes written at {@link DONE_OFFSET}. */
export function encodeDone(done: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(done), true);
  return bytes;
}

/**
 * Parses a header from the first bytes of a file (the fixed 48 bytes, and the metadata when
 * `withMetadata`). Throws CORRUPT_INPUT naming `file` when it is not a feature cache.
 */
export function decodeHeader(bytes: Uint8Array, file: string, withMetadata = true): CacheHeader {
  const corrupt = (why: string) =>
    new CompressError('CORRUPT_INPUT', `${file} is not a compress feature cache: ${why}`, { input: file });
  if (bytes.length < FIXED)
    throw corrupt(`it has ${bytes.length} bytes, fewer than the ${FIXED}-byte header`);
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== CACHE_MAGIC)
    throw corrupt(`expected the magic "${CACHE_MAGIC}", found ${JSON.stringify(magic)}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== CACHE_VERSION) {
    throw new CompressError(
      'UNSUPPORTED',
      `${file}: feature cache version ${version}, this version of @compress/teacher reads version ${CACHE_VERSION}`,
      { input: file },
    );
  }
  const headerBytes = view.getUint32(12, true);
  const code = view.getUint32(16, true);
  const dim = view.getUint32(20, true);
  const rows = Number(view.getBigUint64(24, true));
  const doneRows = Number(view.getBigUint64(DONE_OFFSET, true));
  const jsonLength = view.getUint32(40, true);
  if (code !== 1 && code !== 2) throw corrupt(`unknown dtype code ${code} (1 = float32, 2 = float16)`);
  if (dim < 1) throw corrupt('dim is 0');
  if (doneRows > rows) throw corrupt(`${doneRows} rows marked done of ${rows}`);
  if (FIXED + jsonLength > headerBytes) throw corrupt('the metadata runs past the header');
  if (!withMetadata)
    return {
      version,
      headerBytes,
      dtype: code === 2 ? 'float16' : 'float32',
      dim,
      rows,
      doneRows,
      meta: undefined as never,
    };
  if (bytes.length < FIXED + jsonLength) throw corrupt('the header is cut short');
  let meta: CacheMetadata;
  try {
    meta = JSON.parse(new TextDecoder().decode(bytes.subarray(FIXED, FIXED + jsonLength))) as CacheMetadata;
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
  return { version, headerBytes, dtype: code === 2 ? 'float16' : 'float32', dim, rows, doneRows, meta };
}

/** Expected size of a complete cache file. */
export function fileBytes(header: Pick<CacheHeader, 'headerBytes' | 'rows' | 'dim' | 'dtype'>): number {
  return header.headerBytes + header.rows * header.dim * bytesPerValue(header.dtype);
}

/** Reads and parses the header of an open file of `size` bytes. */
export async function readHeader(handle: FileHandle, size: number, file: string): Promise<CacheHeader> {
  const prefix = new Uint8Array(Math.min(size, FIXED));
  await handle.read(prefix, 0, prefix.length, 0);
  decodeHeader(prefix, file, false); // checks magic, version and sizes before trusting the length
  const length = new DataView(prefix.buffer).getUint32(40, true);
  const whole = new Uint8Array(Math.min(size, FIXED + length));
  await handle.read(whole, 0, whole.length, 0);
  return decodeHeader(whole, file);
}
