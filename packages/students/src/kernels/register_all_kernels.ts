import { getKernel, type KernelConfig, registerKernel, unregisterKernel } from '@tensorflow/tfjs-core';
import { batchMatMulConfig, setWasmBatchMatMul } from './BatchMatMul.js';
import { batchNormTrainConfig, batchNormTrainGradConfig } from './BatchNormTrain.js';
import { conv2DBackpropFilterConfig } from './Conv2DBackpropFilter.js';
import { conv2DBackpropInputConfig } from './Conv2DBackpropInput.js';
import { depthwiseConv2dNativeBackpropFilterConfig } from './DepthwiseConv2dNativeBackpropFilter.js';
import { depthwiseConv2dNativeBackpropInputConfig } from './DepthwiseConv2dNativeBackpropInput.js';
import { identityConfig } from './Identity.js';

/** The training kernels compress adds to (or replaces in) the `wasm` backend, alphabetically. */
export const wasmTrainingKernels: readonly KernelConfig[] = [
  batchMatMulConfig,
  batchNormTrainConfig,
  batchNormTrainGradConfig,
  conv2DBackpropFilterConfig,
  conv2DBackpropInputConfig,
  depthwiseConv2dNativeBackpropFilterConfig,
  depthwiseConv2dNativeBackpropInputConfig,
  identityConfig,
];

/**
 * Registers {@link wasmTrainingKernels} for `wasm`, replacing the backend's own version where it has
 * one (its Conv2DBackpropInput is a plain loop; its BatchMatMul is slow with transposed operands;
 * its Identity copies).
 * Idempotent.
 */
export function registerWasmTrainingKernels(): void {
  for (const config of wasmTrainingKernels) {
    const current = getKernel(config.kernelName, 'wasm');
    if (current?.kernelFunc === config.kernelFunc) continue;
    if (current !== undefined) unregisterKernel(config.kernelName, 'wasm');
    if (config === batchMatMulConfig && current !== undefined) {
      // we delegate to the backend's own kernel: keep its setup (it binds the wasm function)
      setWasmBatchMatMul(current.kernelFunc);
      registerKernel(current.setupFunc ? { ...config, setupFunc: current.setupFunc } : config);
      continue;
    }
    registerKernel(config);
  }
}
