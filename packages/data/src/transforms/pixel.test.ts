import { type FloatImage, type RawImage, Rng } from '@compress/core';
import { describe, expect, it } from 'vitest';
import { grayscaleToRgb, normalize, toFloat } from './pixel.js';

const rng = new Rng(0);
const raw: RawImage = { data: Uint8Array.from([0, 51, 255, 102]), height: 2, width: 2, channels: 1 };

describe('toFloat', () => {
  it('divides by 255 like ToTensor and passes floats through', () => {
    const out = toFloat()(raw, rng) as FloatImage;
    expect(Array.from(out.data)).toEqual([0, 51 / 255, 1, 102 / 255].map(Math.fround));
    expect(toFloat()(out, rng)).toBe(out);
  });
});

describe('normalize', () => {
  it('subtracts the mean and divides by the std per channel', () => {
    const img: FloatImage = { data: Float32Array.from([0.5, 0.2, 1, 0]), height: 1, width: 2, channels: 2 };
    const out = normalize([0.5, 0.1], [0.25, 0.5])(img, rng);
    expect(Array.from(out.data)).toEqual([0, 0.2, 2, -0.2].map(Math.fround));
    const one = normalize([0.5], [0.5])(img, rng);
    expect(Array.from(one.data)).toEqual([0, -0.6, 1, -1].map(Math.fround));
  });

  it('says what is wrong with its input', () => {
    expect(() => normalize([0.5], [0.5])(raw, rng)).toThrow(
      'normalize: expected a float image, found 8-bit values; put toFloat() before normalize()',
    );
    const rgb: FloatImage = { data: new Float32Array(3), height: 1, width: 1, channels: 3 };
    expect(() => normalize([0.5, 0.5], [1, 1])(rgb, rng)).toThrow(
      'normalize: the image has 3 channels, expected 2 (the length of mean/std) or mean/std of length 1',
    );
    expect(() => normalize([0.5], [0])).toThrow(
      'normalize: mean and std must be non-empty arrays of finite numbers of the same length with no zero std, got mean [0.5], std [0]',
    );
  });
});

describe('grayscaleToRgb', () => {
  it('copies the grey channel into three and passes RGB through', () => {
    const out = grayscaleToRgb()(raw, rng);
    expect(out.channels).toBe(3);
    expect(Array.from(out.data)).toEqual([0, 0, 0, 51, 51, 51, 255, 255, 255, 102, 102, 102]);
    expect(grayscaleToRgb()(out, rng)).toBe(out);
    const f = grayscaleToRgb()(toFloat()(raw, rng), rng);
    expect(f.data).toBeInstanceOf(Float32Array);
    expect(() =>
      grayscaleToRgb()({ data: new Uint8Array(2), height: 1, width: 1, channels: 2 }, rng),
    ).toThrow('grayscaleToRgb: expected an image with 1 channel (or 3, passed through), found 2');
  });
});
