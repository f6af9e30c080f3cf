import { describe, expect, it } from 'vitest';
import { isIdentity, makePlan, toModelInput } from './layout.js';

describe('toModelInput', () => {
  // Two 2×2 RGB images, NHWC: value = 100·b + 10·pixel + channel.
  const src = Float32Array.from({ length: 2 * 4 * 3 }, (_, i) => {
    const b = Math.floor(i / 12);
    const p = Math.floor((i % 12) / 3);
    return 100 * b + 10 * p + (i % 3);
  });

  it('transposes NHWC to NCHW and normalises per channel', () => {
    const plan = makePlan('NCHW', 3, 3, { mean: [0, 1, 2], std: [1, 2, 4] });
    const dst = new Float32Array(24);
    toModelInput(src, 0, 2, 4, plan, dst);
    expect(Array.from(dst.subarray(0, 12))).toEqual([0, 10, 20, 30, 0, 5, 10, 15, 0, 2.5, 5, 7.5]);
    expect(dst[12]).toBe(100);
    expect(isIdentity(plan)).toBe(false);
  });

  it('starts at any image of the batch', () => {
    const plan = makePlan('NCHW', 3, 3, 'none');
    const dst = new Float32Array(12);
    toModelInput(src, 1, 1, 4, plan, dst);
    expect(Array.from(dst)).toEqual([100, 110, 120, 130, 101, 111, 121, 131, 102, 112, 122, 132]);
  });

  it('repeats a gray channel into three, in both layouts', () => {
    const gray = Float32Array.from([0.5, 1]);
    const nchw = new Float32Array(6);
    toModelInput(gray, 0, 1, 2, makePlan('NCHW', 1, 3, { mean: [0.5], std: [0.5] }), nchw);
    expect(Array.from(nchw)).toEqual([0, 1, 0, 1, 0, 1]);
    const nhwc = new Float32Array(6);
    toModelInput(gray, 0, 1, 2, makePlan('NHWC', 1, 3, 'none'), nhwc);
    expect(Array.from(nhwc)).toEqual([0.5, 0.5, 0.5, 1, 1, 1]);
  });

  it('knows when the data can go in unchanged', () => {
    expect(isIdentity(makePlan('NHWC', 3, 3, 'none'))).toBe(true);
    expect(isIdentity(makePlan('NCHW', 1, 1, 'none'))).toBe(true);
    expect(isIdentity(makePlan('NCHW', 3, 3, 'none'))).toBe(false);
    expect(isIdentity(makePlan('NHWC', 3, 3, 'imagenet'))).toBe(false);
  });
});
