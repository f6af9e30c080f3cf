import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  Identity,
  type IdentityInputs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';

/**
 * Identity that shares the input's data (reference-counted, as the cpu backend and wasm's own
 * Reshape do) instead of copying it. tfjs clones every tensor a gradient saves for the backward
 * pass (tf.customGrad, tf.clone): with the backend's copying Identity, each saved activation
 * existed twice.
 */
export function identity(args: { inputs: IdentityInputs; backend: BackendWasm }): TensorInfo {
  const x = args.inputs.x as TensorInfo;
  args.backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

export const identityConfig: KernelConfig = {
  kernelName: Identity,
  backendName: 'wasm',
  kernelFunc: identity as unknown as KernelFunc,
};
