import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { simdKernelsWasm } from './simd-kernels-wasm.js';

/** The SIMD kernels of simd_kernels.c, on the backend's own memory (byte offsets of its tensors). */
export interface SimdKernels {
  bn_forward(
    x: number,
    gamma: number,
    beta: number,
    rows: number,
    c: number,
    eps: number,
    act: number,
    y: number,
    mean: number,
    variance: number,
    invStd: number,
    acc: number,
  ): void;
  bn_backward(
    dy: number,
    x: number,
    mean: number,
    invStd: number,
    gamma: number,
    y: number,
    rows: number,
    c: number,
    act: number,
    dx: number,
    dGamma: number,
    dBeta: number,
    acc: number,
  ): void;
  max_pool_grad(
    dy: number,
    x: number,
    y: number,
    dx: number,
    n: number,
    h: number,
    w: number,
    c: number,
    ho: number,
    wo: number,
    kh: number,
    kw: number,
    sh: number,
    sw: number,
    padTop: number,
    padLeft: number,
  ): void;
}

/** The parts of the WebAssembly JS API used here (the package's TypeScript config has no DOM types). */
interface WasmApi {
  Memory: abstract new (...args: never[]) => object;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const simdByBackend = new WeakMap<object, SimdKernels | null>();
let simdModule: object | undefined;

/**
 * The SIMD kernels instantiated on `backend`'s WebAssembly memory, or null where the backend does
 * not expose it (the kernels then use their other implementation).
 */
export function simdOf(backend: BackendWasm): SimdKernels | null {
  let simd = simdByBackend.get(backend);
  if (simd === undefined) {
    simd = null;
    const memory = (backend.wasm as unknown as { asm?: { memory?: unknown } }).asm?.memory;
    if (memory instanceof wasmApi.Memory) {
      simdModule ??= new wasmApi.Module(Buffer.from(simdKernelsWasm, 'base64'));
      simd = new wasmApi.Instance(simdModule, { env: { memory } }).exports as unknown as SimdKernels;
    }
    simdByBackend.set(backend, simd);
  }
  return simd;
}

/** Byte offset of a tensor in the wasm heap. */
export function offsetOf(backend: BackendWasm, t: TensorInfo): number {
  return (backend as unknown as { dataIdMap: { get(id: object): { memoryOffset: number } } }).dataIdMap.get(
    t.dataId,
  ).memoryOffset;
}
