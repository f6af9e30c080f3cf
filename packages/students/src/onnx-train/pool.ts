// Max pooling, average pooling (non-overlapping), global average pooling and flatten, forward and backward.
import { CompressError } from '@compress/core';
import type { Tape, Value } from './tape.js';

/**
 * nn.MaxPool2d (floor mode). The backward scatters dy onto the positions MaxPool's Indices output
 * names (flat NCHW indices of the unpadded input), adding where overlapping windows chose the same
 * element.
 */
export function maxPool(t: Tape, x: Value, kernel: number, stride: number, padding: number): Value {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const ho = Math.floor((h + 2 * padding - kernel) / stride) + 1;
  const wo = Math.floor((w + 2 * padding - kernel) / stride) + 1;
  const [y, indices] = t.opN('MaxPool', [x.name], 2, {
    intLists: {
      kernel_shape: [kernel, kernel],
      strides: [stride, stride],
      pads: [padding, padding, padding, padding],
    },
  }) as [string, string];
  return t.record([x], y, [n, c, ho, wo], (dy) => {
    const zeros = t.op('ConstantOfShape', [t.i64([n * c * h * w])]);
    const flat = t.op(
      'ScatterElements',
      [zeros, t.op('Reshape', [indices, t.i64([-1])]), t.op('Reshape', [dy, t.i64([-1])])],
      { ints: { axis: 0 }, strings: { reduction: 'add' } },
    );
    return [t.op('Reshape', [flat, t.i64(x.shape)])];
  });
}

/**
 * k×k average pooling with stride k over a map whose sides are multiples of k (the students'
 * adaptive pooling); k = 1 is the identity. dx = dy spread over each window, / k².
 */
export function avgPool(t: Tape, x: Value, kernel: number, what: string): Value {
  if (kernel === 1) return x;
  const [n, c, h, w] = x.shape as [number, number, number, number];
  if (h % kernel !== 0 || w % kernel !== 0) {
    throw new CompressError(
      'UNSUPPORTED',
      `training graph: ${what}: ${kernel}×${kernel} average pooling of a ${h}×${w} map (sides must be multiples of the kernel)`,
    );
  }
  const ho = h / kernel;
  const wo = w / kernel;
  const y = t.op('AveragePool', [x.name], {
    intLists: { kernel_shape: [kernel, kernel], strides: [kernel, kernel] },
  });
  return t.record([x], y, [n, c, ho, wo], (dy) => {
    const spread = t.op('Expand', [
      t.op('Reshape', [dy, t.i64([n, c, ho, 1, wo, 1])]),
      t.i64([n, c, ho, kernel, wo, kernel]),
    ]);
    return [t.op('Mul', [t.op('Reshape', [spread, t.i64(x.shape)]), t.scalar(1 / (kernel * kernel))])];
  });
}

/** Mean over H and W: [N, C, H, W] → [N, C]; dx = dy / (H·W) at every position. */
export function globalAvgPool(t: Tape, x: Value): Value {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const y = t.op('ReduceMean', [x.name], { ints: { keepdims: 0 }, intLists: { axes: [2, 3] } });
  return t.record([x], y, [n, c], (dy) => {
    const spread = t.op('Expand', [t.op('Reshape', [dy, t.i64([n, c, 1, 1])]), t.i64(x.shape)]);
    return [t.op('Mul', [spread, t.scalar(1 / (h * w))])];
  });
}

/** [N, C, H, W] → [N, H·W·C] in NHWC order (the students' flatten); [N, D] stays. */
export function flatten(t: Tape, x: Value): Value {
  if (x.shape.length === 2) return x;
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const nhwc = t.op('Transpose', [x.name], { intLists: { perm: [0, 2, 3, 1] } });
  const y = t.op('Reshape', [nhwc, t.i64([n, h * w * c])]);
  return t.record([x], y, [n, h * w * c], (dy) => [
    t.op('Transpose', [t.op('Reshape', [dy, t.i64([n, h, w, c])])], { intLists: { perm: [0, 3, 1, 2] } }),
  ]);
}
