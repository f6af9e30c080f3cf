import { describe, expect, it } from 'vitest';
import { checksumError, crc32, crc32Of, formatChecksum, verifySection } from './checksum.js';
import { CompressError } from './errors.js';

describe('checksums', () => {
  it('is CRC-32 (IEEE), continues piece by piece and reads any typed array as its bytes', () => {
    const text = new TextEncoder().encode('123456789');
    expect(crc32(text)).toBe(0xcbf43926); // the standard check value
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(text.subarray(4), crc32(text.subarray(0, 4)))).toBe(0xcbf43926);
    expect(crc32Of([text.subarray(0, 2), text.subarray(2, 7), text.subarray(7)])).toBe(0xcbf43926);
    const floats = Float32Array.from([1, -2.5, 3e-7]);
    expect(crc32(floats)).toBe(crc32(new Uint8Array(floats.buffer)));
    expect(crc32(floats.subarray(1))).toBe(crc32(new Uint8Array(floats.buffer, 4)));
  });

  it('names the file, the section and both checksums on a mismatch', () => {
    expect(formatChecksum(0xab)).toBe('0x000000ab');
    const bytes = Uint8Array.from([1, 2, 3]);
    expect(() => verifySection('a.bin', 'values', bytes, crc32(bytes))).not.toThrow();
    expect(() =>
      verifySection('a.bin', 'values', [bytes.subarray(0, 1), bytes.subarray(1)], crc32(bytes)),
    ).not.toThrow();
    let error: unknown;
    try {
      verifySection('a.bin', 'values', bytes, 0x12345678, 'restore it or retrain');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CompressError);
    expect((error as CompressError).code).toBe('CORRUPT_INPUT');
    expect((error as CompressError).input).toBe('a.bin');
    expect((error as CompressError).message).toBe(
      `a.bin: section 'values' checksum mismatch (stored 0x12345678, computed ${formatChecksum(crc32(bytes))}): the file is damaged; restore it or retrain`,
    );
    expect(checksumError('f', 'header', 1, 2).message).toBe(
      "f: section 'header' checksum mismatch (stored 0x00000001, computed 0x00000002): the file is damaged; restore it from a copy or make it again",
    );
  });
});
