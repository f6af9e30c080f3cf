/**
 * Width and height of a JPEG from its start-of-frame marker, without decoding; `null` when `bytes`
 * is not a JPEG or the header is damaged (the decoder then reports the problem). These are the
 * stored dimensions, before any EXIF orientation, which is what Pillow and sharp decode to.
 */
export function jpegSize(bytes: Uint8Array): { width: number; height: number } | null {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return null;
  let i = 2;
  while (i + 3 < bytes.length) {
    if (bytes[i] !== 0xff) return null;
    let marker = bytes[i + 1]!;
    while (marker === 0xff && i + 2 < bytes.length) {
      i++; // fill bytes
      marker = bytes[i + 1]!;
    }
    i += 2;
    // Markers without a length: TEM, RST0–7, SOI, EOI.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd9)) continue;
    if (i + 1 >= bytes.length) return null;
    const len = (bytes[i]! << 8) | bytes[i + 1]!;
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSof) {
      if (i + 6 >= bytes.length) return null;
      const height = (bytes[i + 3]! << 8) | bytes[i + 4]!;
      const width = (bytes[i + 5]! << 8) | bytes[i + 6]!;
      return width > 0 && height > 0 ? { width, height } : null;
    }
    if (len < 2) return null;
    i += len;
  }
  return null;
}
