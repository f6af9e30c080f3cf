import { Rng } from '@compress/core';
import { describe, expect, it } from 'vitest';
import { decodeHalf, encodeHalf, F16_MAX, fromHalf, toHalf } from './f16.js';

describe('float16', () => {
  it('encodes known values exactly', () => {
    expect(toHalf(0)).toBe(0x0000);
    expect(toHalf(-0)).toBe(0x8000);
    expect(toHalf(1)).toBe(0x3c00);
    expect(toHalf(-2)).toBe(0xc000);
    expect(toHalf(0.5)).toBe(0x3800);
    expect(toHalf(F16_MAX)).toBe(0x7bff);
    expect(toHalf(2 ** -14)).toBe(0x0400); // smallest normal
    expect(toHalf(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(toHalf(Number.POSITIVE_INFINITY)).toBe(0x7c00);
    expect(toHalf(Number.NEGATIVE_INFINITY)).toBe(0xfc00);
    expect(toHalf(Number.NaN) & 0x7c00).toBe(0x7c00);
    expect(toHalf(Number.NaN) & 0x3ff).not.toBe(0);
  });

  it('rounds to nearest with ties to even, at every range', () => {
    expect(toHalf(1 + 2 ** -11)).toBe(0x3c00); // tie between 1 and 1+2^-10 → even (1)
    expect(toHalf(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie between 1+2^-10 and 1+2^-9 → even
    expect(toHalf(65519)).toBe(0x7bff); // below the tie with 65536: stays finite
    expect(toHalf(65520)).toBe(0x7c00); // the tie rounds to even: Inf
    expect(toHalf(2 ** -25)).toBe(0x0000); // half the smallest subnormal: tie → 0
    expect(toHalf(3 * 2 ** -26)).toBe(0x0001);
    expect(toHalf(2 ** -26)).toBe(0x0000);
    expect(toHalf(2 ** -14 - 2 ** -25)).toBe(0x0400); // subnormal rounding carries into the first normal
  });

  it('round-trips every float16 bit pattern', () => {
    for (let h = 0; h < 65536; h++) {
      const e = (h >>> 10) & 0x1f;
      if (e === 0x1f && (h & 0x3ff) !== 0) continue; // NaN payloads are not kept
      expect(toHalf(fromHalf(h))).toBe(h);
    }
  });

  it('picks the nearest float16 for random float32 values', () => {
    const rng = new Rng(7);
    const src = new Float32Array(20000);
    for (let i = 0; i < src.length; i++) src[i] = rng.normal(0, 1) * 2 ** rng.int(40) * 2 ** -25;
    const half = new Uint16Array(src.length);
    expect(encodeHalf(src, half)).toBe(-1);
    const back = new Float32Array(src.length);
    decodeHalf(half, back);
    for (let i = 0; i < src.length; i++) {
      const x = src[i]!;
      const h = half[i]!;
      expect(back[i]).toBe(fromHalf(h));
      const err = Math.abs(x - fromHalf(h));
      // The neighbours (one unit in the last place away, same sign) are no nearer.
      for (const n of [h - 1, h + 1]) {
        if ((n & 0x7fff) >= 0x7c00 || n < 0 || (n & 0x8000) !== (h & 0x8000)) continue;
        expect(Math.abs(x - fromHalf(n))).toBeGreaterThanOrEqual(err);
      }
    }
  });

  it('reports the first value beyond the float16 range', () => {
    const half = new Uint16Array(3);
    expect(encodeHalf(new Float32Array([1, 70000, -1e6]), half)).toBe(1);
    expect(encodeHalf(new Float32Array([1, Number.POSITIVE_INFINITY]), new Uint16Array(2))).toBe(-1);
  });
});
