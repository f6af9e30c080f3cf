import { type FloatImage, type RawImage, Rng } from '@compress/core';
import { describe, expect, it } from 'vitest';
import { centerCrop, flip, horizontalFlip, resize } from './geometry.js';
import { resizedCrop } from './resample.js';

function image(h: number, w: number, c = 1): RawImage {
  const data = new Uint8Array(h * w * c);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 1) % 256;
  return { data, height: h, width: w, channels: c };
}

describe('horizontalFlip', () => {
  it('mirrors rows exactly when it flips', () => {
    const img: RawImage = {
      data: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
      height: 2,
      width: 3,
      channels: 2,
    };
    expect(Array.from(flip(img).data)).toEqual([5, 6, 3, 4, 1, 2, 11, 12, 9, 10, 7, 8]);
    expect(horizontalFlip(1)(img, new Rng(0)).data).toEqual(flip(img).data);
    expect(horizontalFlip(0)(img, new Rng(0))).toBe(img);
  });

  it('flips about a fraction p of images, deterministically per seed', () => {
    const img = image(2, 2);
    const t = horizontalFlip(0.5);
    let flips = 0;
    for (let seed = 0; seed < 2000; seed++) if (t(img, new Rng(seed)) !== img) flips++;
    expect(flips / 2000).toBeGreaterThan(0.46);
    expect(flips / 2000).toBeLessThan(0.54);
    const a = Array.from({ length: 20 }, (_, s) => t(img, new Rng(s)) !== img);
    const b = Array.from({ length: 20 }, (_, s) => t(img, new Rng(s)) !== img);
    expect(a).toEqual(b);
  });

  it('draws one number whatever p is', () => {
    for (const p of [0, 0.3, 1]) {
      const r = new Rng(9);
      horizontalFlip(p)(image(2, 2), r);
      const ref = new Rng(9);
      ref.next();
      expect(r.state()).toEqual(ref.state());
    }
  });

  it('rejects p outside [0, 1]', () => {
    expect(() => horizontalFlip(1.5)).toThrow('horizontalFlip: p must be a probability in [0, 1], got 1.5');
  });
});

describe('resize', () => {
  it('resizes the shorter side and truncates the longer like torchvision', () => {
    // 500×375 (W×H) → shorter side 256: W = int(256 · 500 / 375) = 341.
    const out = resize(256)(image(375, 500, 3), new Rng(0));
    expect([out.height, out.width]).toEqual([256, 341]);
    const tall = resize(100)(image(300, 199), new Rng(0));
    expect([tall.height, tall.width]).toEqual([150, 100]); // int(100 · 300 / 199) = 150
  });

  it('resizes to an exact [height, width] with the Pillow filter', () => {
    const img = image(30, 40, 3);
    const out = resize([10, 12])(img, new Rng(0));
    expect(out.data).toEqual(resizedCrop(img, { top: 0, left: 0, height: 30, width: 40 }, 10, 12).data);
  });

  it('returns an image already of the target size as it is', () => {
    const img = image(28, 28);
    expect(resize(28)(img, new Rng(0))).toBe(img);
  });

  it('plans the whole image at the target size', () => {
    expect(resize(256).plan!(500, 375, new Rng(0))).toEqual({
      crop: { top: 0, left: 0, height: 375, width: 500 },
      height: 256,
      width: 341,
    });
  });

  it('rejects bad sizes', () => {
    expect(() => resize(-3)).toThrow(
      'resize: size must be a positive integer or [height, width] of positive integers, got -3',
    );
  });
});

describe('centerCrop', () => {
  it('cuts the centre with Python rounding of the offsets', () => {
    const img = image(6, 7);
    const out = centerCrop(3)(img, new Rng(0));
    // top = round((6 − 3) / 2) = round(1.5) = 2, left = round(2) = 2
    const expected: number[] = [];
    for (let y = 2; y < 5; y++) for (let x = 2; x < 5; x++) expected.push(img.data[y * 7 + x]!);
    expect(Array.from(out.data)).toEqual(expected);
  });

  it('pads a smaller image with zeros as torchvision does', () => {
    const img: RawImage = { data: Uint8Array.from([1, 2, 3, 4, 5, 6]), height: 2, width: 3, channels: 1 };
    const out = centerCrop([4, 4])(img, new Rng(0));
    // pad left ⌊1/2⌋ = 0, right 1, top ⌊2/2⌋ = 1, bottom 1.
    expect(Array.from(out.data)).toEqual([0, 0, 0, 0, 1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0, 0]);
  });

  it('works on float images', () => {
    const img: FloatImage = {
      data: Float32Array.from([0.1, 0.2, 0.3, 0.4]),
      height: 2,
      width: 2,
      channels: 1,
    };
    const out = centerCrop(1)(img, new Rng(0));
    expect(out.data).toBeInstanceOf(Float32Array);
    // offsets round((2 − 1) / 2) = round(0.5) = 0 (half to even); a crop copies: exactly
    expect(out.data[0]).toBe(Math.fround(0.1));
  });
});
