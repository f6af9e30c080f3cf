import { CompressError } from '@compress/core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  backend_util,
  type KernelConfig,
  type KernelFunc,
  MaxPoolGrad,
  type MaxPoolGradAttrs,
  type MaxPoolGradInputs,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { offsetOf, simdOf } from './simd.js';

let wasmMaxPoolGrad: KernelFunc | undefined;

/** The backend's own MaxPoolGrad, used where the SIMD kernels cannot run (set at registration). */
export function setWasmMaxPoolGrad(kernel: KernelFunc): void {
  wasmMaxPoolGrad = kernel;
}

/**
 * The gradient of max pooling (NHWC) in one SIMD pass over the output windows (simd_kernels.c):
 * each dy goes to its window's first maximum, as in tfjs and PyTorch. ~5× faster than the wasm
 * backend's scalar kernel, which remains the fallback.
 */
export function maxPoolGrad(args: {
  inputs: MaxPoolGradInputs;
  backend: BackendWasm;
  attrs: MaxPoolGradAttrs;
}): TensorInfo {
  const { backend } = args;
  const { dy, input, output } = args.inputs as { dy: TensorInfo; input: TensorInfo; output: TensorInfo };
  const { filterSize, strides, pad, dimRoundingMode } = args.attrs;
  const simd = simdOf(backend);
  if (simd === null) {
    if (wasmMaxPoolGrad === undefined) {
      throw new CompressError(
        'BACKEND_UNAVAILABLE',
        "kernel 'MaxPoolGrad' has no wasm version to fall back to",
        {
          input: MaxPoolGrad,
        },
      );
    }
    return wasmMaxPoolGrad(args as unknown as Parameters<KernelFunc>[0]) as TensorInfo;
  }
  const info = backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    filterSize,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const dx = backend.makeOutput(input.shape, 'float32');
  const o = (t: TensorInfo) => offsetOf(backend, t);
  simd.max_pool_grad(
    o(dy),
    o(input),
    o(output),
    o(dx),
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outHeight,
    info.outWidth,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
    info.padInfo.top,
    info.padInfo.left,
  );
  return dx;
}

export const maxPoolGradConfig: KernelConfig = {
  kernelName: MaxPoolGrad,
  backendName: 'wasm',
  kernelFunc: maxPoolGrad as unknown as KernelFunc,
};
