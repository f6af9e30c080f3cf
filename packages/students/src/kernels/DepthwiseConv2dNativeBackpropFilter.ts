import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  DepthwiseConv2dNativeBackpropFilter,
  type DepthwiseConv2dNativeBackpropFilterAttrs,
  type DepthwiseConv2dNativeBackpropFilterInputs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { depthwiseConv2dBackpropFilterImpl } from './DepthwiseConv2dNativeBackpropFilter_impl.js';
import { assertSupported, convGeometry, KernelScope } from './kernel_utils.js';

/**
 * The filter gradient of a depthwise convolution: a per-channel correlation of x with dy, computed
 * in one pass over the wasm heap (no copies; depthwise layers are a small part of the work).
 */
export function depthwiseConv2dNativeBackpropFilter(args: {
  inputs: DepthwiseConv2dNativeBackpropFilterInputs;
  backend: BackendWasm;
  attrs: DepthwiseConv2dNativeBackpropFilterAttrs;
}): TensorInfo {
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const { strides, dilations, pad, dimRoundingMode, filterShape } = args.attrs;
  assertSupported(DepthwiseConv2dNativeBackpropFilter, undefined, dilations);
  const info = convGeometry(x.shape, filterShape, strides, pad, dimRoundingMode, true);
  const scope = new KernelScope(args.backend);
  const out = scope.output(filterShape);
  depthwiseConv2dBackpropFilterImpl(
    scope.values(x),
    scope.values(dy),
    {
      batch: info.batchSize,
      inHeight: info.inHeight,
      inWidth: info.inWidth,
      channels: info.inChannels,
      multiplier: filterShape[3] as number,
      outHeight: info.outHeight,
      outWidth: info.outWidth,
      filterHeight: info.filterHeight,
      filterWidth: info.filterWidth,
      strideHeight: info.strideHeight,
      strideWidth: info.strideWidth,
      padTop: info.padInfo.top,
      padLeft: info.padInfo.left,
    },
    scope.values(out),
  );
  return out;
}

export const depthwiseConv2dNativeBackpropFilterConfig: KernelConfig = {
  kernelName: DepthwiseConv2dNativeBackpropFilter,
  backendName: 'wasm',
  kernelFunc: depthwiseConv2dNativeBackpropFilter as unknown as KernelFunc,
};
