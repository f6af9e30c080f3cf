import { crc32 as zlibCrc32 } from 'node:zlib';
import { CompressError } from './errors.js';

/**
 * CRC-32 (IEEE 802.3: the checksum of zlib, gzip and PNG) of `data`, continuing from `crc` (the
 * checksum of the bytes before it; 0 to start), so that the checksum of a byte range can be
 * computed piece by piece: `crc32(b, crc32(a))` is the checksum of `a` followed by `b`.
 * Every binary file of compress (checkpoints, trainer state, memory queues, feature caches)
 * stores these over its sections and checks them when reading.
 */
export function crc32(data: ArrayBufferView, crc = 0): number {
  const bytes =
    data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return zlibCrc32(bytes, crc) >>> 0;
}

/** CRC-32 of several byte ranges taken as one. */
export function crc32Of(parts: readonly ArrayBufferView[]): number {
  let crc = 0;
  for (const part of parts) crc = crc32(part, crc);
  return crc;
}

/** A checksum as written in messages: `0x` and 8 hex digits. */
export function formatChecksum(crc: number): string {
  return `0x${(crc >>> 0).toString(16).padStart(8, '0')}`;
}

/** What a message about a damaged file tells the user to do, unless the format says otherwise. */
export const DEFAULT_REMEDY = 'restore it from a copy or make it again';

/**
 * The CORRUPT_INPUT error of a section whose checksum does not match:
 * "`file`: section 'name' checksum mismatch (stored 0x…, computed 0x…): the file is damaged; `remedy`".
 */
export function checksumError(
  file: string,
  section: string,
  stored: number,
  computed: number,
  remedy = DEFAULT_REMEDY,
): CompressError {
  return new CompressError(
    'CORRUPT_INPUT',
    `${file}: section '${section}' checksum mismatch (stored ${formatChecksum(stored)}, computed ${formatChecksum(computed)}): the file is damaged; ${remedy}`,
    { input: file },
  );
}

/**
 * Checks the bytes of one section of `file` against the checksum stored for it, throwing
 * {@link checksumError} on a mismatch. `data` may be the bytes or their already computed checksum.
 */
export function verifySection(
  file: string,
  section: string,
  data: ArrayBufferView | readonly ArrayBufferView[] | number,
  stored: number,
  remedy?: string,
): void {
  const computed =
    typeof data === 'number'
      ? data >>> 0
      : Array.isArray(data)
        ? crc32Of(data)
        : crc32(data as ArrayBufferView);
  if (computed !== stored >>> 0) throw checksumError(file, section, stored, computed, remedy);
}
