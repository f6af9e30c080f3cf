/**
 * The filter of a convolution's input gradient: rotated by 180° in space and, for a dense filter,
 * with its channel axes swapped: out[i, j, co, ci] = w[kh−1−i, kw−1−j, ci, co]. With `swap` false
 * (depthwise, kh×kw×C×M) only the spatial rotation is applied.
 */
export function rotateFilterImpl(
  w: Float32Array,
  shape: readonly [number, number, number, number],
  swap: boolean,
  out: Float32Array = new Float32Array(w.length),
): Float32Array {
  const [kh, kw, a, b] = shape;
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const src = ((kh - 1 - i) * kw + (kw - 1 - j)) * a * b;
      const dst = (i * kw + j) * a * b;
      if (!swap) {
        out.set(w.subarray(src, src + a * b), dst);
        continue;
      }
      for (let ci = 0; ci < a; ci++) {
        for (let co = 0; co < b; co++) out[dst + co * a + ci] = w[src + ci * b + co]!;
      }
    }
  }
  return out;
}
