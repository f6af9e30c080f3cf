/**
 * BatchNorm in train mode over the rows of an N×C matrix (NHWC activations flattened), in plain
 * typed-array math with float64 per-channel accumulators. Forward: mean, biased variance (two
 * passes, as exact as PyTorch's), y = (x − mean)·γ/σ + β with σ = √(var + eps).
 */
export function batchNormTrainImpl(
  x: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  c: number,
  eps: number,
  y: Float32Array,
  mean: Float32Array,
  variance: Float32Array,
  invStd: Float32Array,
  /** Applied to y: 0 none, 1 ReLU, 2 ReLU6. */
  activation: 0 | 1 | 2 = 0,
): void {
  const n = x.length / c;
  const acc = new Float64Array(c);
  for (let r = 0, o = 0; r < n; r++, o += c) for (let k = 0; k < c; k++) acc[k]! += x[o + k]!;
  for (let k = 0; k < c; k++) mean[k] = acc[k]! / n;
  const m = Float64Array.from(mean);
  acc.fill(0);
  for (let r = 0, o = 0; r < n; r++, o += c) {
    for (let k = 0; k < c; k++) {
      const d = x[o + k]! - m[k]!;
      acc[k]! += d * d;
    }
  }
  const scale = new Float32Array(c);
  const shift = new Float32Array(c);
  for (let k = 0; k < c; k++) {
    variance[k] = acc[k]! / n;
    invStd[k] = 1 / Math.sqrt(variance[k]! + eps);
    scale[k] = gamma[k]! * invStd[k]!;
    shift[k] = beta[k]! - mean[k]! * scale[k]!;
  }
  const hi = activation === 2 ? 6 : Number.POSITIVE_INFINITY;
  for (let r = 0, o = 0; r < n; r++, o += c) {
    if (activation === 0) {
      for (let k = 0; k < c; k++) y[o + k] = x[o + k]! * scale[k]! + shift[k]!;
    } else {
      for (let k = 0; k < c; k++) {
        const v = x[o + k]! * scale[k]! + shift[k]!;
        y[o + k] = v > 0 ? Math.min(v, hi) : 0;
      }
    }
  }
}

/**
 * Backward of {@link batchNormTrainImpl}: with x̂ = (x − mean)/σ and g = dy masked by the
 * activation's derivative (read from the output y: 0 < y, and y < 6 for ReLU6),
 * dβ = Σ g, dγ = Σ g·x̂, dx = γ/σ · (g − dβ/N − x̂·dγ/N).
 */
export function batchNormTrainGradImpl(
  dy: Float32Array,
  x: Float32Array,
  mean: Float32Array,
  invStd: Float32Array,
  gamma: Float32Array,
  c: number,
  dx: Float32Array,
  dGamma: Float32Array,
  dBeta: Float32Array,
  activation: 0 | 1 | 2 = 0,
  y: Float32Array | null = null,
): void {
  const n = x.length / c;
  const sumDy = new Float64Array(c);
  const sumDyXc = new Float64Array(c);
  if (activation !== 0) {
    // g = dy · act'(y), written into dx (used as scratch; dx is overwritten below)
    const hi = activation === 2 ? 6 : Number.POSITIVE_INFINITY;
    const yv = y as Float32Array;
    for (let i = 0; i < dx.length; i++) {
      const v = yv[i]!;
      dx[i] = v > 0 && v < hi ? dy[i]! : 0;
    }
    dy = dx;
  }
  for (let r = 0, o = 0; r < n; r++, o += c) {
    for (let k = 0; k < c; k++) {
      const g = dy[o + k]!;
      sumDy[k]! += g;
      sumDyXc[k]! += g * (x[o + k]! - mean[k]!);
    }
  }
  // dx = a·dy + b·x + d per channel, folded from the formula above
  const a = new Float32Array(c);
  const b = new Float32Array(c);
  const d = new Float32Array(c);
  for (let k = 0; k < c; k++) {
    const s = invStd[k]!;
    dBeta[k] = sumDy[k]!;
    dGamma[k] = sumDyXc[k]! * s;
    const scale = gamma[k]! * s;
    a[k] = scale;
    // − scale·x̂·dγ/N = − scale·s²·(x − mean)·Σdy·xc / N
    b[k] = (-scale * s * s * sumDyXc[k]!) / n;
    d[k] = (-scale * sumDy[k]!) / n - b[k]! * mean[k]!;
  }
  for (let r = 0, o = 0; r < n; r++, o += c)
    for (let k = 0; k < c; k++) dx[o + k] = a[k]! * dy[o + k]! + b[k]! * x[o + k]! + d[k]!;
}
