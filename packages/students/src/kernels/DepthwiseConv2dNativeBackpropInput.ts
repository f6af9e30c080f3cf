import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  DepthwiseConv2dNativeBackpropInput,
  type DepthwiseConv2dNativeBackpropInputAttrs,
  type DepthwiseConv2dNativeBackpropInputInputs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { stridedTransposeConv } from './Conv2DBackpropInput.js';
import { assertSupported, convGeometry, KernelScope } from './kernel_utils.js';
import { rotateFilterImpl } from './rotate_filter_impl.js';

/**
 * dx of a depthwise convolution as a stride-1 depthwise convolution of dy (zero-dilated by the
 * stride) with the 180°-rotated filter. With a channel multiplier M > 1, dy's channels c·M + m are
 * gathered per m, convolved with filter[..., m] and summed.
 */
export function depthwiseConv2dNativeBackpropInput(args: {
  inputs: DepthwiseConv2dNativeBackpropInputInputs;
  backend: BackendWasm;
  attrs: DepthwiseConv2dNativeBackpropInputAttrs;
}): TensorInfo {
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const { strides, dilations, pad, dimRoundingMode, inputShape } = args.attrs;
  assertSupported(DepthwiseConv2dNativeBackpropInput, undefined, dilations);
  const info = convGeometry(inputShape, filter.shape, strides, pad, dimRoundingMode, true);
  const [kh, kw, cin, mult] = filter.shape as [number, number, number, number];
  const scope = new KernelScope(args.backend);
  // filter: kh×kw×Cin×M, rotated by 180°
  const flipped = scope.track(scope.output(filter.shape));
  rotateFilterImpl(scope.values(filter), [kh, kw, cin, mult], false, scope.values(flipped));
  if (mult === 1) {
    return scope.finish(stridedTransposeConv(scope, dy, flipped, info, 'DepthwiseConv2dNative', {}));
  }
  const [b, ho, wo] = dy.shape as [number, number, number, number];
  // dy: B×Ho×Wo×(Cin·M) → B×Ho×Wo×Cin×M
  const dy5 = scope.run('Reshape', { x: dy }, { shape: [b, ho, wo, cin, mult] });
  let sum: TensorInfo | undefined;
  for (let m = 0; m < mult; m++) {
    const part = scope.run('Slice', { x: dy5 }, { begin: [0, 0, 0, 0, m], size: [b, ho, wo, cin, 1] });
    const dyM = scope.run('Reshape', { x: part }, { shape: [b, ho, wo, cin] });
    const fPart = scope.run('Slice', { x: flipped }, { begin: [0, 0, 0, m], size: [kh, kw, cin, 1] });
    const dx = stridedTransposeConv(scope, dyM, fPart, info, 'DepthwiseConv2dNative', {});
    sum = sum === undefined ? dx : scope.run('Add', { a: sum, b: dx });
  }
  return scope.finish(sum as TensorInfo);
}

export const depthwiseConv2dNativeBackpropInputConfig: KernelConfig = {
  kernelName: DepthwiseConv2dNativeBackpropInput,
  backendName: 'wasm',
  kernelFunc: depthwiseConv2dNativeBackpropInput as unknown as KernelFunc,
};
