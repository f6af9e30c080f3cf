import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  Conv2DBackpropFilter,
  type Conv2DBackpropFilterAttrs,
  type Conv2DBackpropFilterInputs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { assertSupported, convGeometry, KernelScope } from './kernel_utils.js';

/**
 * dW = Σ_{b,u,v} x_pad[b, s·u + i, s·v + j, ci] · dy[b, u, v, co], computed as ONE fast forward
 * convolution: the padded input transposed to [Cin, Hp, Wp, B] is the "batch of images", dy
 * transposed to [Ho, Wo, B, Cout] is the "filter" (dilated by the stride), `valid` padding; the
 * [Cin, kh, kw, Cout] result is transposed back to [kh, kw, Cin, Cout]. On wasm (XNNPACK) this is
 * ~3× faster than im2col + a transposed matMul.
 */
export function conv2DBackpropFilter(args: {
  inputs: Conv2DBackpropFilterInputs;
  backend: BackendWasm;
  attrs: Conv2DBackpropFilterAttrs;
}): TensorInfo {
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = args.attrs;
  assertSupported(Conv2DBackpropFilter, dataFormat, 1);
  const info = convGeometry(x.shape, filterShape, strides, pad, dimRoundingMode, false);
  const { top, bottom, left, right } = info.padInfo;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const scope = new KernelScope(args.backend);
  // x: B×H×W×Cin → B×Hp×Wp×Cin
  const xPad =
    top === 0 && bottom === 0 && left === 0 && right === 0
      ? x
      : scope.run(
          'PadV2',
          { x },
          {
            paddings: [
              [0, 0],
              [Math.max(top, 0), Math.max(bottom, 0)],
              [Math.max(left, 0), Math.max(right, 0)],
              [0, 0],
            ],
            constantValue: 0,
          },
        );
  // xT: Cin×Hp×Wp×B;  dyT: Ho×Wo×B×Cout
  const xT = scope.run('Transpose', { x: xPad }, { perm: [3, 1, 2, 0] });
  const dyT = scope.run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] });
  // r: Cin×(Hp − s(Ho−1))×(Wp − s(Wo−1))×Cout, of which the first kh×kw taps are dW
  let r = scope.run(
    'Conv2D',
    { x: xT, filter: dyT },
    { strides: 1, pad: 'valid', dataFormat: 'NHWC', dilations: [sh, sw] },
  ) as TensorInfo;
  const [cin, rh, rw, cout] = r.shape as [number, number, number, number];
  if (rh !== kh || rw !== kw) {
    r = scope.run('Slice', { x: r }, { begin: [0, 0, 0, 0], size: [cin, kh, kw, cout] });
  }
  // dW: kh×kw×Cin×Cout
  const dw = scope.run('Transpose', { x: r }, { perm: [1, 2, 0, 3] });
  return scope.finish(dw);
}

export const conv2DBackpropFilterConfig: KernelConfig = {
  kernelName: Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilter as unknown as KernelFunc,
};
