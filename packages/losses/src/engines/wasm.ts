import { CompressError } from '@compress/core';
import type { MemoryQueue } from '../queue.js';
import { softmaxKL } from '../softmax-kl.js';
import { formatBytes, type QueueStorage } from '../storage.js';
import type { LossAndGrad, LossEngine } from './engine.js';
import type { WasmHeap } from './wasm-heap.js';

/**
 * Rows of the queue per backward product. XNNPACK does not block the inner dimension, so the
 * backward product G[B×K]·Qs[K×Ds] is cut into K/CHUNK products whose packed operands stay in cache.
 */
export const BACKWARD_CHUNK = 2048;

/**
 * The loss on the tfjs `wasm` backend, arranged for its XNNPACK products (which are fast only with
 * plain operand layouts, and pack their second operand):
 *
 * - forward: similarities as Q[K×D]·xᵀ[D×B] → K×B, the queue (large) first and the transposed
 *   batch (small) second, so nothing large is packed or transposed;
 * - softmax, KL and d loss/d logits in one pass over the K×B similarities ({@link softmaxKL});
 * - backward: d loss/d sn[B×Ds] = Σ_c G_c[B×n]·Qs[c][n×Ds] over row chunks of the student queue.
 *
 * Queues live in the wasm heap in their natural K×D row layout (one copy each); the per-step
 * workspace (three K×B buffers and a few B×D ones) is allocated once and reused.
 */
export class WasmEngine implements LossEngine {
  readonly name = 'wasm' as const;
  private readonly heap: WasmHeap;
  private ws: {
    batch: number;
    size: number;
    dim: number;
    lt: number;
    ls: number;
    g: number;
    x: number;
    part: number;
  } | null = null;

  constructor(heap: WasmHeap) {
    this.heap = heap;
  }

  storage(length: number, what: string): QueueStorage {
    return this.heap.storage(length, what);
  }

  get reservedBytes(): number {
    if (this.ws === null) return 0;
    const { batch, size, dim } = this.ws;
    return WasmEngine.workspaceBytes(batch, size, dim);
  }

  /** Bytes of workspace for batches of `batch` rows, queues of `size` rows, largest dim `dim`. */
  static workspaceBytes(batch: number, size: number, dim: number): number {
    return 4 * (3 * size * batch + 2 * dim * batch);
  }

  reserve(batch: number, size: number, studentDim: number, teacherDim: number): void {
    const dim = Math.max(studentDim, teacherDim);
    if (this.ws !== null && this.ws.batch >= batch && this.ws.size === size && this.ws.dim >= dim) return;
    this.release();
    const kb = size * batch * 4;
    const got: number[] = [];
    try {
      const what = `CompressLoss workspace for B = ${batch}, K = ${size} (${formatBytes(WasmEngine.workspaceBytes(batch, size, dim))})`;
      const lt = this.heap.malloc(kb, what);
      got.push(lt);
      const ls = this.heap.malloc(kb, what);
      got.push(ls);
      const g = this.heap.malloc(kb, what);
      got.push(g);
      const x = this.heap.malloc(dim * batch * 4, what);
      got.push(x);
      const part = this.heap.malloc(dim * batch * 4, what);
      got.push(part);
      this.ws = { batch, size, dim, lt, ls, g, x, part };
    } catch (e) {
      for (const off of got) this.heap.free(off);
      throw e;
    }
  }

  lossAndGrad(
    teacherQueue: MemoryQueue,
    studentQueue: MemoryQueue,
    tn: Float32Array,
    sn: Float32Array,
    batch: number,
    temperature: number,
  ): LossAndGrad {
    const K = teacherQueue.size;
    const dt = teacherQueue.dim;
    const ds = studentQueue.dim;
    const qt = wasmOffset(teacherQueue);
    const qs = wasmOffset(studentQueue);
    this.reserve(batch, K, ds, dt);
    const ws = this.ws!;
    const heap = this.heap;
    // lt = Qt·tnᵀ: K×B.
    transposeInto(tn, batch, dt, heap.f32(ws.x, dt * batch));
    heap.gemm(qt, K, dt, ws.x, batch, ws.lt);
    // ls = Qs·snᵀ: K×B.
    transposeInto(sn, batch, ds, heap.f32(ws.x, ds * batch));
    heap.gemm(qs, K, ds, ws.x, batch, ws.ls);
    const loss = softmaxKL(
      heap.f32(ws.lt, K * batch),
      heap.f32(ws.ls, K * batch),
      K,
      batch,
      temperature,
      heap.f32(ws.g, K * batch),
      BACKWARD_CHUNK,
    );
    // d loss/d sn = Σ_c G_c[B×n] · Qs[k0…k0+n)[n×Ds]: B×Ds.
    const acc = new Float64Array(batch * ds);
    for (let k0 = 0; k0 < K; k0 += BACKWARD_CHUNK) {
      const n = Math.min(BACKWARD_CHUNK, K - k0);
      heap.gemm(ws.g + k0 * batch * 4, batch, n, qs + k0 * ds * 4, ds, ws.part);
      const part = heap.f32(ws.part, batch * ds);
      for (let j = 0; j < part.length; j++) acc[j] = acc[j]! + part[j]!;
    }
    return { loss, grad: Float32Array.from(acc) };
  }

  private release(): void {
    if (this.ws === null) return;
    for (const off of [this.ws.lt, this.ws.ls, this.ws.g, this.ws.x, this.ws.part]) this.heap.free(off);
    this.ws = null;
  }

  dispose(): void {
    this.release();
  }
}

function wasmOffset(queue: MemoryQueue): number {
  const s = queue.storage;
  if (s.kind !== 'wasm') {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `the wasm engine needs queues in the wasm heap, found ${s.kind} storage (create the queue with the engine's storage)`,
      { input: 'queue' },
    );
  }
  return s.offset;
}

/** out[D×B] = xᵀ for x: B×D row-major. */
function transposeInto(x: Float32Array, b: number, d: number, out: Float32Array): void {
  for (let i = 0; i < b; i++) {
    const o = i * d;
    for (let j = 0; j < d; j++) out[j * b + i] = x[o + j]!;
  }
}
