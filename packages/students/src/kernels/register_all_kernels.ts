import { CompressError } from '@compress/core';
import {
  getKernel,
  type KernelConfig,
  type KernelFunc,
  registerKernel,
  unregisterKernel,
} from '@tensorflow/tfjs-core';
import { batchMatMulConfig, setWasmBatchMatMul } from './BatchMatMul.js';
import { batchNormTrainConfig, batchNormTrainGradConfig } from './BatchNormTrain.js';
import { conv2DBackpropFilterConfig } from './Conv2DBackpropFilter.js';
import { conv2DBackpropInputConfig } from './Conv2DBackpropInput.js';
import { depthwiseConv2dNativeBackpropFilterConfig } from './DepthwiseConv2dNativeBackpropFilter.js';
import { depthwiseConv2dNativeBackpropInputConfig } from './DepthwiseConv2dNativeBackpropInput.js';
import { identityConfig } from './Identity.js';
import { maxPoolGradConfig, setWasmMaxPoolGrad } from './MaxPoolGrad.js';
import { createOnnxKernels, onnxKernelNames, onnxKernelsAvailable, type WasmKernel } from './onnxruntime.js';

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
  maxPoolGradConfig,
];

/** Kernels that delegate to (or fall back on) the backend's own version, and how they are told it. */
const delegates = new Map<KernelConfig, (kernel: KernelFunc) => void>([
  [batchMatMulConfig, setWasmBatchMatMul],
  [maxPoolGradConfig, setWasmMaxPoolGrad],
]);

/**
 * Which code runs the convolutions of `wasm` (dense: forward and both gradients; depthwise: the
 * filter gradient): `wasm` (WebAssembly: XNNPACK and compress's kernels), `onnxruntime`
 * (onnxruntime-node's native CPU kernels, several times faster; an optional peer dependency), or
 * `auto` (onnxruntime where installed, else wasm).
 */
export type KernelEngine = 'auto' | 'wasm' | 'onnxruntime';

export interface WasmKernelOptions {
  /** @default 'auto' */
  kernels?: KernelEngine;
  /** onnxruntime's intra-op threads for the `onnxruntime` kernels (0: one per core). @default 1 */
  threads?: number;
}

/** The backend's own configs of the kernels replaced here, kept to restore or fall back to. */
const original = new Map<string, KernelConfig>();
let engine: 'wasm' | 'onnxruntime' | undefined;

function replace(config: KernelConfig): void {
  const current = getKernel(config.kernelName, 'wasm');
  if (current?.kernelFunc === config.kernelFunc) return;
  if (current !== undefined) {
    if (!original.has(config.kernelName)) original.set(config.kernelName, current);
    unregisterKernel(config.kernelName, 'wasm');
  }
  // a kernel that binds wasm functions in its setup keeps that setup
  const setupFunc = config.setupFunc ?? current?.setupFunc;
  registerKernel(setupFunc ? { ...config, setupFunc } : config);
}

/**
 * Registers {@link wasmTrainingKernels} for `wasm`, replacing the backend's own version where it has
 * one (its Conv2DBackpropInput and MaxPoolGrad are plain loops; its BatchMatMul is slow with
 * transposed operands; its Identity copies); then, with `kernels` `onnxruntime` (or `auto` where onnxruntime-node is
 * installed), the convolution kernels that run on onnxruntime. Calling it again with
 * another choice switches engines. Returns the engine now in place.
 */
export function registerWasmTrainingKernels(options: WasmKernelOptions = {}): 'wasm' | 'onnxruntime' {
  const want = options.kernels ?? 'auto';
  if (want !== 'auto' && want !== 'wasm' && want !== 'onnxruntime') {
    throw new CompressError(
      'CONFIG',
      `kernels must be one of auto, wasm, onnxruntime; found '${String(want)}'`,
      {
        input: 'kernels',
      },
    );
  }
  for (const config of wasmTrainingKernels) {
    const tell = delegates.get(config);
    if (tell !== undefined) {
      const current = getKernel(config.kernelName, 'wasm');
      if (current !== undefined && current.kernelFunc !== config.kernelFunc) tell(current.kernelFunc);
    }
    replace(config);
  }
  // the wasm configs of the kernels onnxruntime replaces: compress's own, else the backend's
  const wasmConfig = (name: string) =>
    wasmTrainingKernels.find((k) => k.kernelName === name) ?? original.get(name);
  const useOnnx = want === 'onnxruntime' || (want === 'auto' && onnxKernelsAvailable());
  if (useOnnx) {
    const previous = (name: string) => {
      const config = wasmConfig(name);
      if (config === undefined) {
        throw new CompressError(
          'BACKEND_UNAVAILABLE',
          `kernel '${name}' has no wasm version to fall back to`,
          {
            input: name,
          },
        );
      }
      return config.kernelFunc as unknown as WasmKernel;
    };
    for (const config of createOnnxKernels({ threads: options.threads }, previous)) replace(config);
    engine = 'onnxruntime';
  } else {
    for (const name of onnxKernelNames) {
      const config = wasmConfig(name);
      if (config !== undefined) replace(config);
    }
    engine = 'wasm';
  }
  return engine;
}

/** The kernel engine {@link registerWasmTrainingKernels} put in place last, if it ran. */
export function wasmKernelEngine(): 'wasm' | 'onnxruntime' | undefined {
  return engine;
}
