// Max pooling, average pooling (non-overlapping), global average pooling and flatten, forward and backward.
import { CompressError } from '@compress/core';
import type { Tape, Value } from './tape.js';

const NHWC_TO_NCHW = [0, 3, 1, 2];
const NCHW_TO_NHWC = [0, 2, 3, 1];

/**
 * nn.MaxPool2d (floor mode) of an NHWC map: onnxruntime's MaxPool between transposes. The backward
 * scatters dy onto the positions MaxPool's Indices output names (flat NCHW indices of the unpadded
 * input), adding where overlapping windows chose the same element.
 */
export function maxPool(t: Tape, x: Value, kernel: number, stride: number, padding: number): Value {
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const ho = Math.floor((h + 2 * padding - kernel) / stride) + 1;
  const wo = Math.floor((w + 2 * padding - kernel) / stride) + 1;
  const xc = t.op('Transpose', [x.name], { intLists: { perm: NHWC_TO_NCHW } });
  const window = {
    intLists: {
      kernel_shape: [kernel, kernel],
      strides: [stride, stride],
      pads: [padding, padding, padding, padding],
    },
  };
  if (!x.grad) {
    // no backward (the key encoder): onnxruntime's pooling without the Indices output, several
    // times faster than with it
    const y = t.op('Transpose', [t.op('MaxPool', [xc], window)], { intLists: { perm: NCHW_TO_NHWC } });
    return t.record([x], y, [n, ho, wo, c], () => []);
  }
  const [yc, indices] = t.opN('MaxPool', [xc], 2, window) as [string, string];
  const y = t.op('Transpose', [yc], { intLists: { perm: NCHW_TO_NHWC } });
  return t.record([x], y, [n, ho, wo, c], (dy) => {
    const dyc = t.op('Transpose', [dy], { intLists: { perm: NHWC_TO_NCHW } });
    const zeros = t.op('ConstantOfShape', [t.i64([n * c * h * w])]);
    const flat = t.op(
      'ScatterElements',
      [zeros, t.op('Reshape', [indices, t.i64([-1])]), t.op('Reshape', [dyc, t.i64([-1])])],
      { ints: { axis: 0 }, strings: { reduction: 'add' } },
    );
    return [
      t.op('Transpose', [t.op('Reshape', [flat, t.i64([n, c, h, w])])], { intLists: { perm: NCHW_TO_NHWC } }),
    ];
  });
}

/**
 * k×k average pooling with stride k over an NHWC map whose sides are multiples of k (the
 * students' adaptive pooling), as a mean over the window axes of [N, Ho, k, Wo, k, C]; k = 1 is the
 * identity. dx = dy spread over each window, / k².
 */
export function avgPool(t: Tape, x: Value, kernel: number, what: string): Value {
  if (kernel === 1) return x;
  const [n, h, w, c] = x.shape as [number, number, number, number];
  if (h % kernel !== 0 || w % kernel !== 0) {
    throw new CompressError(
      'UNSUPPORTED',
      `training graph: ${what}: ${kernel}×${kernel} average pooling of a ${h}×${w} map (sides must be multiples of the kernel)`,
    );
  }
  const ho = h / kernel;
  const wo = w / kernel;
  const y = t.op('ReduceMean', [t.op('Reshape', [x.name, t.i64([n, ho, kernel, wo, kernel, c])])], {
    ints: { keepdims: 0 },
    intLists: { axes: [2, 4] },
  });
  return t.record([x], y, [n, ho, wo, c], (dy) => {
    const spread = t.op('Expand', [
      t.op('Reshape', [dy, t.i64([n, ho, 1, wo, 1, c])]),
      t.i64([n, ho, kernel, wo, kernel, c]),
    ]);
    return [t.op('Mul', [t.op('Reshape', [spread, t.i64(x.shape)]), t.scalar(1 / (kernel * kernel))])];
  });
}

/** Mean over H and W: [N, H, W, C] → [N, C]; dx = dy / (H·W) at every position. */
export function globalAvgPool(t: Tape, x: Value): Value {
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const y = t.op('ReduceMean', [x.name], { ints: { keepdims: 0 }, intLists: { axes: [1, 2] } });
  return t.record([x], y, [n, c], (dy) => {
    const spread = t.op('Expand', [t.op('Reshape', [dy, t.i64([n, 1, 1, c])]), t.i64(x.shape)]);
    return [t.op('Mul', [spread, t.scalar(1 / (h * w))])];
  });
}

/** [N, H, W, C] → [N, H·W·C] (NHWC order, the students' flatten); [N, D] stays. */
export function flatten(t: Tape, x: Value): Value {
  if (x.shape.length === 2) return x;
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const y = t.op('Reshape', [x.name, t.i64([n, h * w * c])]);
  return t.record([x], y, [n, h * w * c], (dy) => [t.op('Reshape', [dy, t.i64(x.shape)])]);
}
