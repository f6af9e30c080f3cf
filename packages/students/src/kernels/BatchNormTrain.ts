import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { batchNormTrainGradImpl, batchNormTrainImpl } from './batch_norm_train_impl.js';
import { offsetOf, simdOf } from './simd.js';

/**
 * compress's own kernel: train-mode BatchNorm over the last axis, optionally followed by ReLU or
 * ReLU6 (attr `activation`), → [y, mean, variance, invStd].
 */
export const BatchNormTrain = 'CompressBatchNormTrain';
/** Its gradient: inputs dy, x, mean, invStd, gamma (and y with an activation) → [dx, dGamma, dBeta]. */
export const BatchNormTrainGrad = 'CompressBatchNormTrainGrad';

/** Scratch of 4·c float64 on the heap for the SIMD kernels (the caller frees it). */
function scratch(backend: BackendWasm, c: number): TensorInfo {
  return backend.makeOutput([8 * c], 'float32');
}

function batchNormTrain(args: {
  inputs: Record<string, TensorInfo>;
  backend: BackendWasm;
  attrs: NamedAttrMap;
}): TensorInfo[] {
  const { backend } = args;
  const { x, gamma, beta } = args.inputs as { x: TensorInfo; gamma: TensorInfo; beta: TensorInfo };
  const eps = args.attrs.eps as number;
  const activation = activationCode(args.attrs.activation);
  const c = x.shape[x.shape.length - 1] as number;
  const y = backend.makeOutput(x.shape, 'float32');
  const mean = backend.makeOutput([c], 'float32');
  const variance = backend.makeOutput([c], 'float32');
  const invStd = backend.makeOutput([c], 'float32');
  const simd = simdOf(backend);
  if (simd !== null) {
    const acc = scratch(backend, c);
    const o = (t: TensorInfo) => offsetOf(backend, t);
    const rows = sizeOf(x) / c;
    simd.bn_forward(
      o(x),
      o(gamma),
      o(beta),
      rows,
      c,
      eps,
      activation,
      o(y),
      o(mean),
      o(variance),
      o(invStd),
      o(acc),
    );
    backend.disposeData(acc.dataId);
    return [y, mean, variance, invStd];
  }
  const v = (t: TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
  batchNormTrainImpl(v(x), v(gamma), v(beta), c, eps, v(y), v(mean), v(variance), v(invStd), activation);
  return [y, mean, variance, invStd];
}

function sizeOf(t: TensorInfo): number {
  return t.shape.reduce((p, d) => p * d, 1);
}

function activationCode(a: unknown): 0 | 1 | 2 {
  return a === 'relu' ? 1 : a === 'relu6' ? 2 : 0;
}

function batchNormTrainGrad(args: {
  inputs: Record<string, TensorInfo>;
  backend: BackendWasm;
  attrs: NamedAttrMap;
}): TensorInfo[] {
  const { backend } = args;
  const { dy, x, mean, invStd, gamma, y } = args.inputs as Record<
    'dy' | 'x' | 'mean' | 'invStd' | 'gamma' | 'y',
    TensorInfo
  >;
  const activation = activationCode(args.attrs.activation);
  const c = x.shape[x.shape.length - 1] as number;
  const dx = backend.makeOutput(x.shape, 'float32');
  const dGamma = backend.makeOutput([c], 'float32');
  const dBeta = backend.makeOutput([c], 'float32');
  const simd = simdOf(backend);
  if (simd !== null) {
    const acc = scratch(backend, c);
    const o = (t: TensorInfo) => offsetOf(backend, t);
    const rows = sizeOf(x) / c;
    simd.bn_backward(
      o(dy),
      o(x),
      o(mean),
      o(invStd),
      o(gamma),
      activation === 0 ? 0 : o(y),
      rows,
      c,
      activation,
      o(dx),
      o(dGamma),
      o(dBeta),
      o(acc),
    );
    backend.disposeData(acc.dataId);
    return [dx, dGamma, dBeta];
  }
  const v = (t: TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
  batchNormTrainGradImpl(
    v(dy),
    v(x),
    v(mean),
    v(invStd),
    v(gamma),
    c,
    v(dx),
    v(dGamma),
    v(dBeta),
    activation,
    y ? v(y) : null,
  );
  return [dx, dGamma, dBeta];
}

export const batchNormTrainConfig: KernelConfig = {
  kernelName: BatchNormTrain,
  backendName: 'wasm',
  kernelFunc: batchNormTrain as unknown as KernelFunc,
};

export const batchNormTrainGradConfig: KernelConfig = {
  kernelName: BatchNormTrainGrad,
  backendName: 'wasm',
  kernelFunc: batchNormTrainGrad as unknown as KernelFunc,
};
