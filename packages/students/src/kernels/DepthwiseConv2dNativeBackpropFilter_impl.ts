/** Geometry of a depthwise convolution, NHWC, filter kh×kw×C×M. */
export interface DepthwiseGeometry {
  batch: number;
  inHeight: number;
  inWidth: number;
  channels: number;
  multiplier: number;
  outHeight: number;
  outWidth: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  padTop: number;
  padLeft: number;
}

/**
 * dW[i, j, c, m] = Σ_{b,u,v} x[b, s·u + i − top, s·v + j − left, c] · dy[b, u, v, c·M + m]
 * (zero outside x). Plain typed-array math, accumulated in float64: usable without any backend.
 * x: B×H×W×C, dy: B×Ho×Wo×(C·M), result: kh×kw×C×M.
 */
export function depthwiseConv2dBackpropFilterImpl(
  x: Float32Array,
  dy: Float32Array,
  g: DepthwiseGeometry,
  out: Float32Array = new Float32Array(g.filterHeight * g.filterWidth * g.channels * g.multiplier),
): Float32Array {
  const { channels: c, multiplier: mult, filterHeight: kh, filterWidth: kw } = g;
  const cm = c * mult;
  const acc = new Float64Array(kh * kw * cm);
  for (let b = 0; b < g.batch; b++) {
    for (let u = 0; u < g.outHeight; u++) {
      for (let v = 0; v < g.outWidth; v++) {
        const dyOff = ((b * g.outHeight + u) * g.outWidth + v) * cm;
        for (let i = 0; i < kh; i++) {
          const h = u * g.strideHeight + i - g.padTop;
          if (h < 0 || h >= g.inHeight) continue;
          for (let j = 0; j < kw; j++) {
            const w = v * g.strideWidth + j - g.padLeft;
            if (w < 0 || w >= g.inWidth) continue;
            const xOff = ((b * g.inHeight + h) * g.inWidth + w) * c;
            const aOff = (i * kw + j) * cm;
            if (mult === 1) {
              for (let k = 0; k < c; k++) acc[aOff + k]! += x[xOff + k]! * dy[dyOff + k]!;
            } else {
              for (let k = 0; k < c; k++) {
                const xv = x[xOff + k]!;
                for (let m = 0; m < mult; m++) acc[aOff + k * mult + m]! += xv * dy[dyOff + k * mult + m]!;
              }
            }
          }
        }
      }
    }
  }
  for (let k = 0; k < acc.length; k++) out[k] = acc[k]!;
  return out;
}
