/**
 * IEEE 754 binary16 ("half") conversion for feature caches stored as float16. Node 20 has no
 * Float16Array, so values are kept as their 16-bit patterns in a Uint16Array.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Largest finite float16 value. */
export const F16_MAX = 65504;

/** The float16 bit pattern nearest to a float32 bit pattern `b` (round to nearest, ties to even). */
function halfFromBits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0); // Inf, or a quiet NaN
  const e = exp - 127 + 15; // exponent re-biased for float16
  if (e >= 0x1f) return sign | 0x7c00; // too large: ±Inf
  if (e <= 0) {
    // Subnormal float16 (or zero): value / 2^-24 = (1.mant) · 2^(exp − 126) = m24 >> (14 − e).
    const shift = 14 - e;
    if (shift > 24) return sign; // below half the smallest subnormal: ±0
    const m24 = mant | 0x800000;
    let h = m24 >>> shift;
    const rem = m24 & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1) === 1)) h++; // may carry into the smallest normal
    return sign | h;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry may reach the exponent (→ Inf)
  return h;
}

/** The float16 bit pattern of `x`, rounded to nearest (ties to even). */
export function toHalf(x: number): number {
  f32[0] = x;
  return halfFromBits(u32[0]!);
}

/** The value of a float16 bit pattern. */
export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m !== 0 ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

let table: Float32Array | undefined;

/** All 65536 float16 values as float32, indexed by bit pattern (256 KiB, built on first use). */
function halfTable(): Float32Array {
  if (table === undefined) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = fromHalf(h);
  }
  return table;
}

/**
 * Encodes `src` as float16 into `dst`. Returns the index of the first value that is finite in
 * float32 but beyond the float16 range (it became ±Inf), or −1 when every value fitted.
 */
export function encodeHalf(src: Float32Array, dst: Uint16Array): number {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  let overflow = -1;
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!;
    const h = halfFromBits(b);
    dst[i] = h;
    if (overflow < 0 && (h & 0x7fff) === 0x7c00 && ((b >>> 23) & 0xff) !== 0xff) overflow = i;
  }
  return overflow;
}

/** Decodes float16 bit patterns into float32 values. */
export function decodeHalf(src: Uint16Array, dst: Float32Array): void {
  const t = halfTable();
  for (let i = 0; i < src.length; i++) dst[i] = t[src[i]!]!;
}
