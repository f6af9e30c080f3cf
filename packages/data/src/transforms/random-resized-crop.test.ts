import { type RawImage, Rng } from '@compress/core';
import { describe, expect, it } from 'vitest';
import { randomResizedCrop, randomResizedCropBox } from './random-resized-crop.js';
import { resizedCrop } from './resample.js';
import { roundHalfEven } from './transform.js';

function image(h: number, w: number, c = 3): RawImage {
  const data = new Uint8Array(h * w * c);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) % 256;
  return { data, height: h, width: w, channels: c };
}

describe('randomResizedCropBox (torchvision get_params)', () => {
  it('keeps crops inside the image with area and aspect ratio inside the bounds, over many seeds', () => {
    const sizes: [number, number][] = [
      [500, 375],
      [375, 500],
      [28, 28],
      [224, 224],
      [1000, 40],
    ];
    const scale: [number, number] = [0.08, 1];
    const ratio: [number, number] = [3 / 4, 4 / 3];
    let fallbacks = 0;
    const bad: string[] = []; // plain checks: 7500 boxes × 8 vitest expects would take seconds
    const check = (ok: boolean, what: string) => {
      if (!ok) bad.push(what);
    };
    for (const [W, H] of sizes) {
      for (let seed = 0; seed < 1500; seed++) {
        const b = randomResizedCropBox(W, H, new Rng(seed), scale, ratio);
        const at = `${W}×${H} seed ${seed}: ${JSON.stringify(b)}`;
        check(b.top >= 0 && b.left >= 0 && b.top + b.height <= H && b.left + b.width <= W, `outside: ${at}`);
        check(b.width > 0 && b.height > 0, `empty: ${at}`);
        const isFallback =
          b.top === Math.floor((H - b.height) / 2) &&
          b.left === Math.floor((W - b.width) / 2) &&
          (b.width === W || b.height === H);
        if (isFallback && W / H > 4) {
          fallbacks++;
          continue;
        }
        // w = round(√(A·s·r)), h = round(√(A·s/r)): undo the rounding (±½) and check the bounds.
        const A = W * H;
        check((b.width - 0.5) * (b.height - 0.5) <= scale[1] * A + 1e-9, `area too big: ${at}`);
        check((b.width + 0.5) * (b.height + 0.5) >= scale[0] * A - 1e-9, `area too small: ${at}`);
        check((b.width - 0.5) / (b.height + 0.5) <= ratio[1] + 1e-9, `too wide: ${at}`);
        check((b.width + 0.5) / (b.height - 0.5) >= ratio[0] - 1e-9, `too tall: ${at}`);
      }
    }
    expect(bad).toEqual([]);
    // A 25:1 image: most draws cannot fit, some do.
    expect(fallbacks).toBeGreaterThan(0);
  });

  it('is deterministic in the seed and varies across seeds', () => {
    const a = randomResizedCropBox(500, 375, new Rng(7));
    const b = randomResizedCropBox(500, 375, new Rng(7));
    expect(a).toEqual(b);
    const distinct = new Set(
      Array.from({ length: 50 }, (_, s) => JSON.stringify(randomResizedCropBox(500, 375, new Rng(s)))),
    );
    expect(distinct.size).toBeGreaterThan(45);
  });

  it('samples areas across the whole scale range and offsets across the whole image', () => {
    const fractions: number[] = [];
    const lefts = new Set<number>();
    for (let seed = 0; seed < 3000; seed++) {
      const b = randomResizedCropBox(40, 40, new Rng(seed), [0.5, 0.5], [1, 1]);
      fractions.push((b.width * b.height) / 1600);
      lefts.add(b.left);
      expect(b.width).toBe(28); // round(√800) = 28
      expect(b.height).toBe(28);
    }
    // randint(0, W − w) is inclusive of both ends: 13 offsets.
    expect([...lefts].sort((x, y) => x - y)).toEqual(Array.from({ length: 13 }, (_, i) => i));
    const wide: number[] = [];
    for (let seed = 0; seed < 3000; seed++) {
      const b = randomResizedCropBox(1000, 1000, new Rng(seed), [0.08, 1], [1, 1]);
      wide.push((b.width * b.height) / 1e6);
    }
    const mean = wide.reduce((a, b) => a + b, 0) / wide.length;
    expect(mean).toBeGreaterThan(0.52); // uniform on [0.08, 1]: mean 0.54
    expect(mean).toBeLessThan(0.56);
    expect(Math.min(...wide)).toBeLessThan(0.1);
    expect(Math.max(...wide)).toBeGreaterThan(0.98);
  });

  it('falls back to the centre crop with the aspect ratio clamped into range', () => {
    // 100×10 (W×H): every attempt needs more than 10 rows → fallback; W/H = 10 > 4/3 → h = H,
    // w = round(10 · 4/3) = 13, centred.
    expect(randomResizedCropBox(100, 10, new Rng(1), [0.9, 1], [3 / 4, 4 / 3])).toEqual({
      top: 0,
      left: 43,
      height: 10,
      width: 13,
    });
    // A square image but only wide ratios allowed, and crops too big to fit: W/H = 1 < 2 → w = W,
    // h = round(W / 2).
    expect(randomResizedCropBox(30, 30, new Rng(2), [1, 1], [2, 3])).toEqual({
      top: 7,
      left: 0,
      height: 15,
      width: 30,
    });
    // In-range aspect ratio (1.2) but areas larger than the image: the whole image.
    expect(randomResizedCropBox(24, 20, new Rng(3), [1.5, 2], [3 / 4, 4 / 3])).toEqual({
      top: 0,
      left: 0,
      height: 20,
      width: 24,
    });
    // Out of range (1.5 > 4/3): h = H, w = round(20 · 4/3) = 27, centred.
    expect(randomResizedCropBox(30, 20, new Rng(3), [1.5, 2], [3 / 4, 4 / 3])).toEqual({
      top: 0,
      left: 1,
      height: 20,
      width: 27,
    });
  });

  it('rounds like Python (half to even)', () => {
    expect([0.5, 1.5, 2.5, 3.5, 2.4999, 2.5001, -0.5, -1.5].map(roundHalfEven)).toEqual([
      0, 2, 2, 4, 2, 3, 0, -2,
    ]);
  });
});

describe('randomResizedCrop', () => {
  it('crops the sampled box and resizes it to the size', () => {
    const img = image(375, 500);
    const t = randomResizedCrop(224);
    const out = t(img, new Rng(11));
    const box = randomResizedCropBox(500, 375, new Rng(11));
    expect([out.height, out.width, out.channels]).toEqual([224, 224, 3]);
    expect(Buffer.from(out.data).equals(Buffer.from(resizedCrop(img, box, 224, 224).data))).toBe(true);
    expect(Buffer.from(t(img, new Rng(11)).data).equals(Buffer.from(out.data))).toBe(true);
  });

  it('plans what it applies, drawing the same random numbers', () => {
    const t = randomResizedCrop([20, 30], { scale: [0.2, 1] });
    const r1 = new Rng(5);
    const r2 = new Rng(5);
    const plan = t.plan!(64, 48, r1);
    t(image(48, 64), r2);
    expect(r1.state()).toEqual(r2.state());
    expect([plan.height, plan.width]).toEqual([20, 30]);
    expect(t.spec).toEqual({
      kind: 'randomResizedCrop',
      size: [20, 30],
      scale: [0.2, 1],
      ratio: [3 / 4, 4 / 3],
    });
  });

  it('rejects bad sizes, scales and ratios', () => {
    expect(() => randomResizedCrop(0)).toThrow(
      'randomResizedCrop: size must be a positive integer or [height, width] of positive integers, got 0',
    );
    expect(() => randomResizedCrop(224, { scale: [1, 0.5] })).toThrow(
      'randomResizedCrop: scale must be [min, max] with 0 < min ≤ max and min ≤ 1, got [1,0.5]',
    );
    expect(() => randomResizedCrop(224, { ratio: [-1, 2] })).toThrow(
      'randomResizedCrop: ratio must be [min, max] with 0 < min ≤ max, got [-1,2]',
    );
  });
});
