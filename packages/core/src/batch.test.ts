import { describe, expect, it } from 'vitest';
import { collate } from './batch.js';

describe('collate', () => {
  it('stacks 8-bit images into an NHWC batch in [0, 1] with indices and labels', () => {
    const img = (v: number) => ({ data: new Uint8Array([v, v, v, v]), height: 2, width: 2, channels: 1 });
    const b = collate([
      { index: 7, image: img(0), label: 1 },
      { index: 3, image: img(255), label: 0 },
    ]);
    expect(b.shape).toEqual([2, 2, 2, 1]);
    expect(Array.from(b.indices)).toEqual([7, 3]);
    expect(Array.from(b.labels!)).toEqual([1, 0]);
    expect(Array.from(b.images)).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
  });

  it('refuses images of different shapes, naming the dataset index', () => {
    const a = { data: new Uint8Array(4), height: 2, width: 2, channels: 1 };
    const b = { data: new Uint8Array(9), height: 3, width: 3, channels: 1 };
    expect(() =>
      collate([
        { index: 0, image: a },
        { index: 5, image: b },
      ]),
    ).toThrow(/dataset index 5 is 3×3×1, expected 2×2×1/);
    expect(() => collate([])).toThrow(/zero images/);
  });
});
