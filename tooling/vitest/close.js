// Closeness of floating-point results, relative to the scale of what is compared.
//
// Float results of the kernels under test (onnxruntime, tfjs/XNNPACK, compress's WebAssembly SIMD
// kernels, PyTorch-made golden values) differ between CPUs (AVX2, AVX-512 and their FMA use) and
// between thread counts (float sums taken in another order). Those differences scale with the
// values, so a tolerance is a fraction of the scale: max|actual − expected| ≤ rtol · scale, with
// scale = max|expected| unless the caller names the scale (an expected value of about 0 — a loss
// or a mean that should vanish — has no scale of its own: pass that of the inputs it comes from).
import { expect } from 'vitest';

/** Smallest scale used, so all-zero expectations compare exactly rather than dividing by 0. */
const TINY = 1e-30;

function values(x) {
  return typeof x === 'number' ? [x] : x;
}

/** max|expected|, at least 1e-30 (or `scale` when given). */
function scaleOf(e, scale) {
  let s = 0;
  if (scale === undefined) for (let i = 0; i < e.length; i++) s = Math.max(s, Math.abs(e[i]));
  else s = scale;
  return Math.max(s, TINY);
}

/** The largest |a − e| (Infinity where one side is NaN or a non-matching infinity) and where. */
function worstOf(a, e) {
  let worst = 0;
  let at = 0;
  for (let i = 0; i < e.length; i++) {
    if (a[i] === e[i]) continue; // equal infinities too
    const d = Math.abs(a[i] - e[i]);
    if (!(d <= worst)) {
      worst = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
      at = i;
    }
  }
  return { worst, at };
}

/**
 * max|actual − expected| / scale (Infinity where a value is not finite on one side only or the
 * lengths differ), with `scale` = max|expected| (at least 1e-30) unless given.
 */
export function relativeDifference(actual, expected, scale) {
  const a = values(actual);
  const e = values(expected);
  if (a.length !== e.length) return Number.POSITIVE_INFINITY;
  return worstOf(a, e).worst / scaleOf(e, scale);
}

/**
 * Asserts max|actual − expected| ≤ rtol · scale, scale = max|expected| (or `options.scale`), for two
 * numbers or two arrays of the same length; the message names the worst entry.
 */
export function expectClose(actual, expected, options) {
  const { rtol, scale, what = 'values' } = options;
  if (!(rtol >= 0)) throw new Error(`expectClose: rtol must be a number ≥ 0, got ${rtol}`);
  const a = values(actual);
  const e = values(expected);
  expect(a.length, `${what}: length`).toBe(e.length);
  const s = scaleOf(e, scale);
  const { worst, at } = worstOf(a, e);
  const ratio = worst / s;
  if (ratio <= rtol) return;
  const where = e.length === 1 ? '' : ` at [${at}]`;
  expect(
    ratio,
    `${what}: max |actual − expected| = ${worst}${where} (actual ${a[at]}, expected ${e[at]}) is ${ratio.toPrecision(3)} × the scale ${s}; allowed ${rtol}`,
  ).toBeLessThanOrEqual(rtol);
}
