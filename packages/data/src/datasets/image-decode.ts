// Reading and decoding the image files of an ImageFolder, and saying what a file that does not decode holds.
import { readFile } from 'node:fs/promises';
import { CompressError, ioError, type RawImage } from '@compress/core';
import sharp from 'sharp';

export async function read(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (error) {
    throw ioError(error, path, 'read image');
  }
}

/** Reads an image file; an empty one is CORRUPT_INPUT naming it. */
export async function readImage(path: string): Promise<Uint8Array> {
  const bytes = await read(path);
  if (bytes.length === 0) throw undecodable(path, bytes);
  return bytes;
}

/**
 * What a file that does not decode holds, as far as its first and last bytes tell: empty, not an
 * image format decoded here, or a JPEG/PNG/WebP that ends early.
 */
export function describeImageBytes(bytes: Uint8Array): string {
  const n = bytes.length;
  if (n === 0) return 'the file is empty (0 bytes)';
  const size = `${n} byte${n === 1 ? '' : 's'}`;
  const has = (sig: readonly number[], at = 0) => sig.every((b, i) => bytes[at + i] === b);
  const find = (sig: readonly number[], from: number) => {
    for (let i = Math.max(0, from); i + sig.length <= n; i++) if (has(sig, i)) return true;
    return false;
  };
  if (n >= 3 && has([0xff, 0xd8, 0xff])) {
    // The end-of-image marker, allowing for some trailing bytes after it.
    return find([0xff, 0xd9], n - 4096)
      ? `a JPEG file of ${size} that does not decode (damaged data)`
      : `a JPEG file of ${size} without its end-of-image marker: truncated`;
  }
  if (n >= 8 && has([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) {
    return find([0x49, 0x45, 0x4e, 0x44], n - 64) // IEND
      ? `a PNG file of ${size} that does not decode (damaged data)`
      : `a PNG file of ${size} without its IEND chunk: truncated`;
  }
  if (n >= 12 && has([0x52, 0x49, 0x46, 0x46]) && has([0x57, 0x45, 0x42, 0x50], 8)) {
    const declared = (bytes[4]! | (bytes[5]! << 8) | (bytes[6]! << 16) | (bytes[7]! << 24)) >>> 0;
    return declared + 8 > n
      ? `a WebP file of ${size}, ${declared + 8} declared: truncated`
      : `a WebP file of ${size} that does not decode (damaged data)`;
  }
  const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  const text = Array.from(bytes.subarray(0, 24), (b) =>
    b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '',
  ).join('');
  const looksText = text.length >= Math.min(n, 24) * 0.9;
  return `not a JPEG, PNG or WebP file (${size}, starting with ${head}${looksText ? ` "${text}"` : ''})`;
}

/** CORRUPT_INPUT: `path` does not decode, saying what it holds and what the decoder said. */
export function undecodable(
  path: string,
  bytes: Uint8Array,
  detail?: string,
  cause?: unknown,
): CompressError {
  return new CompressError(
    'CORRUPT_INPUT',
    `imageFolder: cannot decode ${path}: ${describeImageBytes(bytes)}${detail ? ` (${detail})` : ''}; pass { skipCorrupt: true } to leave out files that do not decode`,
    { input: path, ...(cause === undefined ? {} : { cause }) },
  );
}

export function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, '; ').trim();
}

/** A sharp pipeline on `bytes`; sharp's own refusals (an empty buffer) name the file too. */
export function open(bytes: Uint8Array, path: string): sharp.Sharp {
  try {
    return sharp(bytes, { failOn: 'warning' });
  } catch (error) {
    throw undecodable(path, bytes, `sharp: ${oneLine((error as Error).message)}`, error);
  }
}

export async function decode(bytes: Uint8Array, path: string): Promise<RawImage> {
  return toRgb(open(bytes, path), path, bytes);
}

export async function toRgb(pipeline: sharp.Sharp, path: string, bytes: Uint8Array): Promise<RawImage> {
  try {
    const { data, info } = await pipeline
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      height: info.height,
      width: info.width,
      channels: 3,
    };
  } catch (error) {
    throw undecodable(path, bytes, `sharp: ${oneLine((error as Error).message)}`, error);
  }
}
