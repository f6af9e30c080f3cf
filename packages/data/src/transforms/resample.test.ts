import { readFileSync } from 'node:fs';
import type { FloatImage, RawImage } from '@compress/core';
import { expectClose } from '@compress/vitest-config/close';
import { describe, expect, it } from 'vitest';
import { crop, resizedCrop } from './resample.js';

interface GoldenCase {
  name: string;
  kind: 'uint8' | 'float32';
  height: number;
  width: number;
  channels: number;
  box: [number, number, number, number];
  out: [number, number];
  expected: number[];
}

// Pillow's output for the same inputs, written by scripts/pil-resample-golden.py.
const golden = JSON.parse(readFileSync(new URL('./pil-resample.golden.json', import.meta.url), 'utf8')) as {
  cases: GoldenCase[];
};

function pattern(h: number, w: number, c: number): RawImage {
  const data = new Uint8Array(h * w * c);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let ch = 0; ch < c; ch++)
        data[(y * w + x) * c + ch] = (x * 37 + y * 91 + ch * 53 + ((x * y) % 7) * 11) % 256;
  return { data, height: h, width: w, channels: c };
}

function patternFloat(h: number, w: number): FloatImage {
  const data = new Float32Array(h * w);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) data[y * w + x] = ((x * 37 + y * 91 + ((x * y) % 7) * 11) % 256) / 255;
  return { data, height: h, width: w, channels: 1 };
}

describe('resizedCrop matches Pillow BILINEAR', () => {
  for (const g of golden.cases) {
    it(g.name, () => {
      const [top, left, height, width] = g.box;
      const box = { top, left, height, width };
      if (g.kind === 'uint8') {
        const out = resizedCrop(pattern(g.height, g.width, g.channels), box, g.out[0], g.out[1]);
        expect([out.height, out.width, out.channels]).toEqual([g.out[0], g.out[1], g.channels]);
        expect(Array.from(out.data)).toEqual(g.expected); // bit-exact
      } else {
        const out = resizedCrop(patternFloat(g.height, g.width), box, g.out[0], g.out[1]);
        // two passes of float64 weighted sums, each rounded to float32, as Pillow's: an ulp or so
        // of the pixels' scale apart (measured equal; the former 5e-7 on values up to 0.67)
        expectClose(out.data, Float32Array.from(g.expected), { rtol: 5e-7, what: 'pixels' });
      }
    });
  }
});

describe('crop', () => {
  it('copies the window and leaves the source alone', () => {
    const img = pattern(4, 5, 2);
    const out = crop(img, { top: 1, left: 2, height: 2, width: 3 });
    expect(out.height).toBe(2);
    expect(out.width).toBe(3);
    expect(Array.from(out.data.subarray(0, 2))).toEqual(Array.from(img.data.subarray(14, 16)));
    expect(out.data.buffer).not.toBe(img.data.buffer);
  });
  it('returns the image itself for the full window', () => {
    const img = pattern(4, 5, 1);
    expect(crop(img, { top: 0, left: 0, height: 4, width: 5 })).toBe(img);
  });
});
