// Convolutions on onnxruntime's NCHWc kernels (its `com.microsoft.nchwc` operators: blocked
// layouts, 3–5× its plain NCHW convolution here) with filters computed in the graph. onnxruntime
// uses these kernels by itself only for constant filters (inference); the training graph reorders
// its filters from tfjs's layout into the blocked ones by Reshape and Transpose every step.
import type { Tape, Value } from './tape.js';

const NCHWC = 'com.microsoft.nchwc';

export interface NchwcConvOptions {
  /** The NHWC input [N, H, W, Cin]. */
  x: Value;
  /** The filter in tfjs's layout: dense [k, k, Cin, Cout], depthwise [k, k, C, 1]. */
  w: string;
  bias: string | null;
  depthwise: boolean;
  kernel: number;
  stride: number;
  /** Padding on every side. */
  pad: number;
  cout: number;
  /** onnxruntime's channel block on this CPU (8 or 16). */
  block: number;
}

const roundUp = (n: number, b: number) => Math.ceil(n / b) * b;

/** Whether the NCHWc kernels take this convolution (channel counts the reorder operators accept). */
export function nchwcApplies(cin: number, cout: number, depthwise: boolean, block: number): boolean {
  if (block < 4) return false;
  if (depthwise) return cin % 4 === 0;
  return cin < block || cin % 4 === 0;
}

/**
 * y = conv(x, w) + b on the NCHWc kernels, NHWC in and out: dense convolutions reorder their
 * input (ReorderInput, channels padded to the block) and take the filter as OIHWBiBo; those with
 * fewer input channels than a block read the input as NCHW and take OIHWBo; depthwise ones take
 * OIHWBo with one input channel per group. Filters and bias are padded with zeros to whole blocks;
 * ReorderOutput drops the padding.
 */
export function nchwcConv(t: Tape, o: NchwcConvOptions): string {
  const { x, w, kernel: k, block: b, cout } = o;
  const cin = x.shape[3] as number;
  const coutPad = roundUp(cout, b);
  const attrs = {
    intLists: {
      kernel_shape: [k, k],
      strides: [o.stride, o.stride],
      pads: [o.pad, o.pad, o.pad, o.pad],
      dilations: [1, 1],
    },
  };
  let input: string;
  let filter: string;
  let group = 1;
  if (o.depthwise) {
    // [k, k, C, 1] → [k, k, Cpad] → [k, k, Cpad/B, B] → [Cpad/B, k, k, B], shaped [Cpad, 1, k, k]
    input = t.op('ReorderInput', [x.name], { ints: { channels_last: 1 }, domain: NCHWC }, 'reorder');
    const flat = t.op('Reshape', [w, t.i64([k, k, cin])]);
    const padded = padAxis(t, flat, [k, k, cin], 2, coutPad);
    const blocked = t.op('Transpose', [t.op('Reshape', [padded, t.i64([k, k, coutPad / b, b])])], {
      intLists: { perm: [2, 0, 1, 3] },
    });
    filter = t.op('Reshape', [blocked, t.i64([coutPad, 1, k, k])]);
    group = coutPad;
  } else if (cin < b) {
    // NCHW input; [k, k, Cin, Cout] → [k, k, Cin, CoutPad/B, B] → [CoutPad/B, Cin, k, k, B]
    input = t.op('Transpose', [x.name], { intLists: { perm: [0, 3, 1, 2] } });
    const padded = padAxis(t, w, [k, k, cin, cout], 3, coutPad);
    const blocked = t.op('Transpose', [t.op('Reshape', [padded, t.i64([k, k, cin, coutPad / b, b])])], {
      intLists: { perm: [3, 2, 0, 1, 4] },
    });
    filter = t.op('Reshape', [blocked, t.i64([coutPad, cin, k, k])]);
  } else {
    // [k, k, CinPad, CoutPad] → [k, k, CinPad/B, Bi, CoutPad/B, Bo] → [CoutPad/B, CinPad/B, k, k, Bi, Bo]
    const cinPad = roundUp(cin, b);
    input = t.op('ReorderInput', [x.name], { ints: { channels_last: 1 }, domain: NCHWC }, 'reorder');
    const padIn = padAxis(t, w, [k, k, cin, cout], 2, cinPad);
    const padded = padAxis(t, padIn, [k, k, cinPad, cout], 3, coutPad);
    const blocked = t.op(
      'Transpose',
      [t.op('Reshape', [padded, t.i64([k, k, cinPad / b, b, coutPad / b, b])])],
      { intLists: { perm: [4, 2, 0, 1, 3, 5] } },
    );
    filter = t.op('Reshape', [blocked, t.i64([coutPad, cinPad, k, k])]);
  }
  const bias = o.bias === null ? null : padAxis(t, o.bias, [cout], 0, coutPad);
  const y = t.op(
    'Conv',
    bias ? [input, filter, bias] : [input, filter],
    { ...attrs, ints: { group }, domain: NCHWC },
    'nchwc_conv',
  );
  return t.op('ReorderOutput', [y], { ints: { channels: cout, channels_last: 1 }, domain: NCHWC }, 'reorder');
}

/** Zeros appended along `axis` of `v` (shape `shape`) up to `size`. */
function padAxis(t: Tape, v: string, shape: readonly number[], axis: number, size: number): string {
  const extra = size - (shape[axis] as number);
  if (extra === 0) return v;
  const pads = new Array<number>(shape.length * 2).fill(0);
  pads[shape.length + axis] = extra;
  return t.op('Pad', [v, t.i64(pads)]);
}
