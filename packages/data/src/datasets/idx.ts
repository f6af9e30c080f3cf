import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { CompressError, ioError } from '@compress/core';

const gunzipAsync = promisify(gunzip);

/** A parsed IDX file (LeCun's MNIST format): `dims` from the header and the unsigned-byte payload. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/**
 * Reads an IDX file of unsigned bytes, gzipped or not (detected from the content): big-endian magic
 * `0x00 0x00 0x08 <ndim>`, `ndim` 32-bit sizes, then the bytes. Checks the payload length.
 */
export async function readIdx(path: string, expectedDims: number): Promise<IdxArray> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw ioError(error, path, 'read');
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = await gunzipAsync(bytes);
    } catch (error) {
      throw new CompressError(
        'CORRUPT_INPUT',
        `${path}: not a valid gzip file (${(error as Error).message})`,
        {
          input: path,
          cause: error,
        },
      );
    }
  }
  return parseIdx(bytes, path, expectedDims);
}

export function parseIdx(bytes: Uint8Array, path: string, expectedDims: number): IdxArray {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = 4 + 4 * expectedDims;
  if (bytes.length < headerLen) {
    throw new CompressError(
      'CORRUPT_INPUT',
      `${path}: ${bytes.length} bytes is too short for an IDX header with ${expectedDims} dimensions (${headerLen} bytes)`,
      { input: path },
    );
  }
  const magic = view.getUint32(0);
  const expectedMagic = 0x00000800 | expectedDims;
  if (magic !== expectedMagic) {
    throw new CompressError(
      'CORRUPT_INPUT',
      `${path}: not an IDX file of unsigned bytes with ${expectedDims} dimensions: magic 0x${magic.toString(16).padStart(8, '0')}, expected 0x${expectedMagic.toString(16).padStart(8, '0')}`,
      { input: path },
    );
  }
  const dims: number[] = [];
  for (let i = 0; i < expectedDims; i++) dims.push(view.getUint32(4 + 4 * i));
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.length - headerLen !== count) {
    throw new CompressError(
      'CORRUPT_INPUT',
      `${path}: the header promises ${dims.join('×')} = ${count} bytes of data, found ${bytes.length - headerLen} (truncated or not IDX)`,
      { input: path },
    );
  }
  // Own the payload: gunzip/readFile buffers may be pooled or much larger than the data.
  const data = new Uint8Array(count);
  data.set(bytes.subarray(headerLen));
  return { dims, data };
}
