import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  BatchMatMul,
  type BatchMatMulAttrs,
  type BatchMatMulInputs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { KernelScope } from './kernel_utils.js';

let wasmBatchMatMul: KernelFunc | undefined;

/** Remembers the backend's own BatchMatMul, which this kernel delegates to. */
export function setWasmBatchMatMul(kernel: KernelFunc): void {
  wasmBatchMatMul = kernel;
}

/**
 * BatchMatMul with the transpose flags turned into explicit transposes: the wasm backend's
 * product runs ~35 GFLOP/s with plain operand layouts but ~3 with transposeB and ~1 with
 * transposeA, and tfjs's matMul gradient asks for both (dA = dy·Bᵀ, dB = Aᵀ·dy).
 */
export function batchMatMul(args: {
  inputs: BatchMatMulInputs;
  backend: BackendWasm;
  attrs: BatchMatMulAttrs;
}): TensorInfo {
  const original = wasmBatchMatMul;
  if (original === undefined)
    throw new Error('BatchMatMul: the wasm backend kernel was not captured at registration');
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  const { transposeA, transposeB } = args.attrs;
  if (!transposeA && !transposeB) return original(args as never) as TensorInfo;
  const scope = new KernelScope(args.backend);
  const flip = (t: TensorInfo) => {
    const r = t.shape.length;
    const perm = [...Array(r).keys()];
    [perm[r - 2], perm[r - 1]] = [perm[r - 1]!, perm[r - 2]!];
    return scope.run('Transpose', { x: t }, { perm });
  };
  const out = original({
    inputs: { a: transposeA ? flip(a) : a, b: transposeB ? flip(b) : b },
    backend: args.backend,
    attrs: { ...args.attrs, transposeA: false, transposeB: false },
  } as never) as TensorInfo;
  return scope.finish(out);
}

export const batchMatMulConfig: KernelConfig = {
  kernelName: BatchMatMul,
  backendName: 'wasm',
  kernelFunc: batchMatMul as unknown as KernelFunc,
};
