import { readFile } from 'node:fs/promises';
import {
  CompressError,
  checksumError,
  crc32,
  crc32Of,
  ioError,
  verifySection,
  writeFileAtomic,
} from '@compress/core';

/** The magic of version 2 (with checksums); version 1 (`CMPRSST1`, none) is still read, unverified. */
const MAGIC = 'CMPRSST2';
const MAGIC_V1 = 'CMPRSST1';
const MAGIC_STEM = 'CMPRSST';

/** What to do with a damaged state file, in every message about one. */
const REMEDY = 'restore it from a copy, use an earlier checkpoint of its run, or train again';

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/**
 * Writes a JSON-like state that contains Float32Arrays (queues, heads) as one binary file, written
 * atomically:
 *
 * ```
 * offset    size  field (version 2)
 *      0       8  magic "CMPRSST2" (the last character is the version)
 *      8       4  u32 length L of the JSON header
 *     12       L  JSON header: the state, every array as { "$f32": offset in floats, "length": n }
 *   12+L       p  zero padding so that 12 + L + p is a multiple of 4
 * 12+L+p       4  u32 CRC-32 of the array data
 * 16+L+p       4  u32 CRC-32 of bytes 0 … 16+L+p (everything before it)
 * 20+L+p       …  the arrays' little-endian float32 data, one after another
 * ```
 * Version 1 (magic "CMPRSST1", no checksum words) is still read, unverified.
 */
export async function writeStateFile(path: string, state: unknown): Promise<void> {
  const arrays: Uint8Array[] = [];
  let offset = 0;
  const header = JSON.stringify(state, (_key, value) => {
    if (value instanceof Float32Array) {
      arrays.push(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
      const ref = { $f32: offset, length: value.length };
      offset += value.length;
      return ref;
    }
    return value;
  });
  const head = Buffer.from(header, 'utf8');
  const prefix = Buffer.alloc(12);
  prefix.write(MAGIC, 0, 'ascii');
  prefix.writeUInt32LE(head.length, 8);
  const pad = Buffer.alloc(pad4(12 + head.length));
  const checksums = Buffer.alloc(8);
  checksums.writeUInt32LE(crc32Of(arrays), 0);
  checksums.writeUInt32LE(crc32Of([prefix, head, pad, checksums.subarray(0, 4)]), 4);
  await writeFileAtomic(path, [prefix, head, pad, checksums, ...arrays]);
}

/**
 * Reads a file written by {@link writeStateFile}, checking its checksums (a version-1 file, which
 * has none, is read unverified). Throws CORRUPT_INPUT naming the file and the damaged section
 * (`header` or `data`) when one does not match, or when the file is cut short.
 */
export async function readStateFile<T>(path: string): Promise<T> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (error) {
    throw ioError(error, path, 'read');
  }
  const magic = buf.length < 12 ? '' : buf.toString('ascii', 0, 8);
  if (magic !== MAGIC && magic !== MAGIC_V1) {
    if (magic.startsWith(MAGIC_STEM) && /^[3-9]$/.test(magic[7]!)) {
      throw new CompressError(
        'UNSUPPORTED',
        `${path}: a compress state file of version ${magic[7]}, this version of @compress/train reads versions 1 and 2`,
        { input: path },
      );
    }
    throw new CompressError('CORRUPT_INPUT', `${path}: not a compress state file (bad magic)`, {
      input: path,
    });
  }
  const verified = magic === MAGIC;
  const cutShort = (where: string) =>
    new CompressError(
      'CORRUPT_INPUT',
      `${path}: the file ends within section '${where}': the file is truncated or damaged; ${REMEDY}`,
      { input: path },
    );
  const headLength = buf.readUInt32LE(8);
  const headEnd = 12 + headLength + pad4(12 + headLength);
  const dataStart = verified ? headEnd + 8 : headEnd;
  if (dataStart > buf.length) throw cutShort('header');
  let dataCrc = 0;
  if (verified) {
    dataCrc = buf.readUInt32LE(headEnd);
    verifySection(path, 'header', buf.subarray(0, headEnd + 4), buf.readUInt32LE(headEnd + 4), REMEDY);
  }
  const data = buf.buffer.slice(buf.byteOffset + dataStart, buf.byteOffset + buf.length);
  const total = data.byteLength / 4;
  let end = 0;
  let state: T;
  try {
    state = JSON.parse(buf.toString('utf8', 12, 12 + headLength), (_key, value) => {
      if (value && typeof value === 'object' && typeof value.$f32 === 'number') {
        if (value.$f32 + value.length > total) throw cutShort('data');
        end = Math.max(end, value.$f32 + value.length);
        return new Float32Array(data, value.$f32 * 4, value.length).slice();
      }
      return value;
    }) as T;
  } catch (error) {
    if (error instanceof CompressError) throw error;
    throw new CompressError('CORRUPT_INPUT', `${path}: the state header is not valid JSON`, {
      input: path,
      cause: error,
    });
  }
  if (verified) {
    if (end * 4 !== data.byteLength) {
      throw new CompressError(
        'CORRUPT_INPUT',
        `${path}: expected ${end * 4} bytes of array data, found ${data.byteLength}: the file is damaged; ${REMEDY}`,
        { input: path },
      );
    }
    const computed = crc32(new Uint8Array(data));
    if (computed !== dataCrc) throw checksumError(path, 'data', dataCrc, computed, REMEDY);
  }
  return state;
}
