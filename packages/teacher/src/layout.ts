/**
 * The hot path of OnnxTeacher: an NHWC batch in [0, 1] → the model's input tensor (layout,
 * channel count and per-channel normalisation in one pass).
 */

import { CompressError } from '@compress/core';

export type InputLayout = 'NCHW' | 'NHWC';

/** Per-channel normalisation: `(x − mean[c]) / std[c]`. */
export interface Normalization {
  mean: readonly number[];
  std: readonly number[];
}

/** torchvision's ImageNet statistics, used by MoCo, SwAV and the torchvision models. */
export const IMAGENET: Normalization = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** How data channels become model channels. */
export interface InputPlan {
  layout: InputLayout;
  /** Channels of the data (C of the ImageBatch). */
  dataChannels: number;
  /** Channels the model takes. Equal to dataChannels, or 3 when one gray channel is repeated. */
  modelChannels: number;
  /** `x · scale[c] + bias[c]` per model channel, i.e. scale = 1/std, bias = −mean/std. */
  scale: Float32Array;
  bias: Float32Array;
}

/** Resolves a normalisation (none, ImageNet, or mean/std per model channel) into scale/bias. */
export function makePlan(
  layout: InputLayout,
  dataChannels: number,
  modelChannels: number,
  normalize: 'none' | 'imagenet' | Normalization,
): InputPlan {
  const stats =
    normalize === 'none'
      ? { mean: new Array(modelChannels).fill(0), std: new Array(modelChannels).fill(1) }
      : normalize === 'imagenet'
        ? IMAGENET
        : normalize;
  const expand = (values: readonly number[], what: string): number[] => {
    if (values.length === modelChannels) return [...values];
    if (values.length === 1) return new Array(modelChannels).fill(values[0]);
    throw new CompressError(
      'SHAPE_MISMATCH',
      `OnnxTeacher: normalize.${what} has ${values.length} values, expected 1 or ${modelChannels} (one per channel of the model's input)`,
      { input: `normalize.${what}` },
    );
  };
  const mean = expand(stats.mean, 'mean');
  const std = expand(stats.std, 'std');
  const scale = new Float32Array(modelChannels);
  const bias = new Float32Array(modelChannels);
  for (let c = 0; c < modelChannels; c++) {
    const s = std[c]!;
    if (!(s > 0) || !Number.isFinite(s) || !Number.isFinite(mean[c]!)) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `OnnxTeacher: normalize needs finite means and positive standard deviations, found mean ${mean[c]} and std ${s} for channel ${c}`,
        { input: 'normalize' },
      );
    }
    scale[c] = 1 / s;
    bias[c] = -mean[c]! / s;
  }
  return { layout, dataChannels, modelChannels, scale, bias };
}

/** True when the plan leaves the values and their order unchanged (the input can be used as is). */
export function isIdentity(plan: InputPlan): boolean {
  if (plan.dataChannels !== plan.modelChannels) return false;
  if (plan.layout === 'NCHW' && plan.modelChannels !== 1) return false;
  for (let c = 0; c < plan.modelChannels; c++) if (plan.scale[c] !== 1 || plan.bias[c] !== 0) return false;
  return true;
}

/**
 * Writes images `[first, first + n)` of an NHWC batch (`pixels` = H·W per image) into `dst` in the
 * model's layout, normalised: `dst` holds n × C' × H × W (NCHW) or n × H × W × C' (NHWC) values.
 */
export function toModelInput(
  src: Float32Array,
  first: number,
  n: number,
  pixels: number,
  plan: InputPlan,
  dst: Float32Array,
): void {
  const { dataChannels: cin, modelChannels: cout, scale, bias } = plan;
  const inPer = pixels * cin;
  const outPer = pixels * cout;
  if (plan.layout === 'NCHW') {
    for (let b = 0; b < n; b++) {
      const si = (first + b) * inPer;
      const to = b * outPer;
      if (cin === 3 && cout === 3) {
        rgbToPlanes(src.subarray(si, si + inPer), dst.subarray(to, to + outPer), pixels, scale, bias);
        continue;
      }
      for (let c = 0; c < cout; c++) {
        const s = scale[c]!;
        const o = bias[c]!;
        const from = si + (cin === 1 ? 0 : c);
        const plane = to + c * pixels;
        if (cin === 1) {
          for (let p = 0; p < pixels; p++) dst[plane + p] = src[from + p]! * s + o;
        } else {
          for (let p = 0; p < pixels; p++) dst[plane + p] = src[from + cin * p]! * s + o;
        }
      }
    }
    return;
  }
  // NHWC → NHWC: same order, channels normalised (and a gray channel repeated when cin = 1 < cout).
  for (let b = 0; b < n; b++) {
    const si = (first + b) * inPer;
    const di = b * outPer;
    if (cin === cout) {
      for (let p = 0; p < pixels; p++) {
        for (let c = 0; c < cout; c++) dst[di + p * cout + c] = src[si + p * cin + c]! * scale[c]! + bias[c]!;
      }
    } else {
      for (let p = 0; p < pixels; p++) {
        const v = src[si + p]!;
        for (let c = 0; c < cout; c++) dst[di + p * cout + c] = v * scale[c]! + bias[c]!;
      }
    }
  }
}

/**
 * One HWC RGB image → three normalised CHW planes: one sequential pass over the pixels, three
 * sequential outputs (a small function of its own so that V8 optimises it on its own).
 */
function rgbToPlanes(
  x: Float32Array,
  out: Float32Array,
  pixels: number,
  scale: Float32Array,
  bias: Float32Array,
): void {
  const s0 = scale[0]!;
  const s1 = scale[1]!;
  const s2 = scale[2]!;
  const o0 = bias[0]!;
  const o1 = bias[1]!;
  const o2 = bias[2]!;
  const r = out.subarray(0, pixels);
  const g = out.subarray(pixels, 2 * pixels);
  const b = out.subarray(2 * pixels, 3 * pixels);
  for (let p = 0, q = 0; p < pixels; p++, q += 3) {
    r[p] = x[q]! * s0 + o0;
    g[p] = x[q + 1]! * s1 + o1;
    b[p] = x[q + 2]! * s2 + o2;
  }
}
