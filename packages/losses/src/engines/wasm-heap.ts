import { CompressError, formatBytes } from '@compress/core';
import type { QueueStorage } from '../storage.js';

/**
 * Direct access to the heap and matrix kernel of the TensorFlow.js `wasm` backend
 * (@tensorflow/tfjs-backend-wasm 4.x): buffers are `_malloc`ed in its heap and given to its
 * `BatchMatMul` kernel (XNNPACK) as temporary tensor ids, so queues of a gigabyte are read in place
 * and written row by row, never copied per step.
 *
 * XNNPACK packs (copies) the second operand of a product and caches that copy by tensor id. The
 * engine therefore only ever passes small, fresh operands second (features, one chunk of a queue)
 * and drops their ids right after the call, which also frees the cached copy.
 */
export class WasmHeap {
  /** Largest heap the backend can grow to (4 GiB − 64 KiB for tfjs-backend-wasm 4.x). */
  readonly heapMax: number;
  private readonly module: WasmModule;
  /** The backend's `WebAssembly.Memory`, when its module exports it (for kernels that share it). */
  readonly memory: { buffer: ArrayBufferLike } | null;
  private readonly backend: { dataIdNextNumber: number };
  private readonly matMul: (...args: unknown[]) => void;

  private constructor(backend: WasmBackendLike) {
    this.backend = backend as unknown as { dataIdNextNumber: number };
    this.module = backend.wasm;
    const mem = backend.wasm.asm?.memory;
    this.memory =
      typeof mem === 'object' && mem !== null && 'buffer' in mem && 'grow' in mem
        ? (mem as { buffer: ArrayBufferLike })
        : null;
    this.heapMax = 4294901760;
    this.matMul = backend.wasm.cwrap('BatchMatMul', null, [
      'number',
      'array',
      'number',
      'number',
      'array',
      'number',
      'number',
      'number',
      'number',
    ]) as (...args: unknown[]) => void;
  }

  private static readonly byBackend = new WeakMap<object, WasmHeap>();

  /** The heap of `backend` if it is a tfjs wasm backend whose internals this engine knows; else null. */
  static of(backend: unknown): WasmHeap | null {
    if (!isWasmBackend(backend)) return null;
    let heap = WasmHeap.byBackend.get(backend);
    if (heap === undefined) {
      heap = new WasmHeap(backend);
      WasmHeap.byBackend.set(backend, heap);
    }
    return heap;
  }

  /** Current size of the heap in bytes (it only grows). */
  get heapSize(): number {
    return this.buffer().byteLength;
  }

  /** Allocates `bytes`; throws OUT_OF_MEMORY (naming `what`) when the heap cannot hold them. */
  malloc(bytes: number, what: string): number {
    const off = bytes > this.heapMax ? 0 : this.module._malloc(bytes) >>> 0;
    if (off === 0) {
      throw new CompressError(
        'OUT_OF_MEMORY',
        `${what}: cannot allocate ${formatBytes(bytes)} on the wasm heap (limit ${formatBytes(this.heapMax)}, ${formatBytes(this.heapSize)} grown so far)`,
        { input: what },
      );
    }
    return off;
  }

  free(offset: number): void {
    if (offset !== 0) this.module._free(offset);
  }

  /** A Float32Array view of `length` floats at `offset`; invalid after the heap grows. */
  f32(offset: number, length: number): Float32Array {
    return new Float32Array(this.buffer(), offset, length);
  }

  /** Storage for a queue in this heap. */
  storage(length: number, what: string): QueueStorage {
    let offset = this.malloc(length * 4, what);
    return {
      kind: 'wasm',
      length,
      get offset() {
        return offset;
      },
      view: () => {
        if (offset === 0)
          throw new CompressError('INVALID_ARGUMENT', `${what} was disposed`, { input: what });
        return this.f32(offset, length);
      },
      dispose: () => {
        this.free(offset);
        offset = 0;
      },
    };
  }

  /**
   * out[M×N] = a[M×K] · b[K×N], all row-major buffers in this heap, through the backend's XNNPACK
   * kernel. `b` is packed by XNNPACK on every call: keep it small.
   */
  gemm(a: number, m: number, k: number, b: number, n: number, out: number): void {
    const ia = this.register(a, m * k);
    const ib = this.register(b, k * n);
    const io = this.register(out, m * n);
    try {
      this.matMul(ia, shapeBytes(1, m, k), 3, ib, shapeBytes(1, k, n), 3, 0, 0, io);
    } finally {
      this.module.tfjs.disposeData(ia);
      this.module.tfjs.disposeData(ib);
      this.module.tfjs.disposeData(io);
    }
  }

  private register(offset: number, size: number): number {
    const id = this.backend.dataIdNextNumber++;
    this.module.tfjs.registerTensor(id, size, offset);
    return id;
  }

  private buffer(): ArrayBufferLike {
    return this.memory !== null ? this.memory.buffer : this.module.HEAPU8.buffer;
  }
}

function shapeBytes(a: number, b: number, c: number): Uint8Array {
  return new Uint8Array(new Int32Array([a, b, c]).buffer);
}

interface WasmModule {
  _malloc(bytes: number): number;
  _free(offset: number): void;
  cwrap(name: string, ret: null, args: string[]): unknown;
  HEAPU8: Uint8Array;
  asm?: { memory?: unknown };
  tfjs: { registerTensor(id: number, size: number, offset: number): void; disposeData(id: number): void };
}

interface WasmBackendLike {
  wasm: WasmModule;
  dataIdNextNumber: number;
}

function isWasmBackend(backend: unknown): backend is WasmBackendLike {
  const b = backend as Partial<WasmBackendLike> | null;
  const w = b?.wasm as Partial<WasmModule> | undefined;
  return (
    typeof b === 'object' &&
    b !== null &&
    typeof b.dataIdNextNumber === 'number' &&
    w !== undefined &&
    typeof w._malloc === 'function' &&
    typeof w._free === 'function' &&
    typeof w.cwrap === 'function' &&
    w.HEAPU8 instanceof Uint8Array &&
    typeof w.tfjs?.registerTensor === 'function' &&
    typeof w.tfjs?.disposeData === 'function' &&
    typeof (w as { _BatchMatMul?: unknown })._BatchMatMul === 'function'
  );
}
