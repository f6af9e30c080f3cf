import { CompressError, formatBytes } from '@compress/core';
import type { MemoryQueue } from '../queue.js';
import { type SoftmaxSums, softmaxKL, softmaxSums } from '../softmax-kl.js';
import type { QueueStorage } from '../storage.js';
import type { LossAndGrad, LossEngine, Similarities, StepInputs } from './engine.js';
import { SoftmaxKlSimd } from './simd.js';
import type { WasmHeap } from './wasm-heap.js';

/**
 * Rows of the queue per backward product. XNNPACK does not block the inner dimension, so the
 * backward product G[B×K]·Qs[K×Ds] is cut into products of `chunk` queue rows whose packed operands
 * stay in cache (measured best: 1024 rows up to Ds = 256, 2048 above).
 */
export function backwardChunk(studentDim: number): number {
  return studentDim <= 256 ? 1024 : 2048;
}

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
  /** The SIMD softmax pass, or null (then the plain-JS {@link softmaxKL} runs). */
  private readonly simd: SoftmaxKlSimd | null;
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

  constructor(heap: WasmHeap, options: { simd?: boolean } = {}) {
    this.heap = heap;
    this.simd = options.simd === false ? null : SoftmaxKlSimd.create(heap);
  }

  /** Whether the softmax pass runs as WebAssembly SIMD (else plain JavaScript). */
  get usesSimd(): boolean {
    return this.simd !== null;
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

  reserve(batchSize: number, size: number, studentDim: number, teacherDim: number): void {
    const batch = padded(batchSize);
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

  /**
   * Both similarity products of a batch on the heap's step buffers: lt = Qt·tnᵀ and ls = Qs·snᵀ,
   * K×Bp each. Columns are padded to a multiple of 4 (the SIMD width) with zero features: their
   * similarities are 0, and they count in neither the loss nor the gradient.
   */
  private products({ teacherQueue, studentQueue, tn, sn, batch }: StepInputs) {
    const K = teacherQueue.size;
    const dt = teacherQueue.dim;
    const ds = studentQueue.dim;
    const qt = wasmOffset(teacherQueue);
    const qs = wasmOffset(studentQueue);
    this.reserve(batch, K, ds, dt);
    const ws = this.ws!;
    const heap = this.heap;
    const bp = padded(batch);
    transposeInto(tn, batch, dt, bp, heap.f32(ws.x, dt * bp));
    heap.gemm(qt, K, dt, ws.x, bp, ws.lt);
    transposeInto(sn, batch, ds, bp, heap.f32(ws.x, ds * bp));
    heap.gemm(qs, K, ds, ws.x, bp, ws.ls);
    return { K, ds, qs, bp, ws, heap };
  }

  lossAndGrad(inputs: StepInputs): LossAndGrad {
    const { batch, temperature } = inputs;
    const { K, ds, qs, bp, ws, heap } = this.products(inputs);
    const chunk = backwardChunk(ds);
    const loss =
      this.simd !== null
        ? this.simd.run(ws.lt, ws.ls, K, bp, temperature, ws.g, chunk, batch)
        : softmaxKL(
            heap.f32(ws.lt, K * bp),
            heap.f32(ws.ls, K * bp),
            K,
            bp,
            temperature,
            heap.f32(ws.g, K * bp),
            chunk,
            batch,
          );
    // d loss/d sn = Σ_c G_c[Bp×n] · Qs[k0…k0+n)[n×Ds]: Bp×Ds, of which the first B rows count.
    const acc = new Float64Array(batch * ds);
    for (let k0 = 0; k0 < K; k0 += chunk) {
      const n = Math.min(chunk, K - k0);
      heap.gemm(ws.g + k0 * bp * 4, bp, n, qs + k0 * ds * 4, ds, ws.part);
      const part = heap.f32(ws.part, batch * ds);
      for (let j = 0; j < part.length; j++) acc[j] = acc[j]! + part[j]!;
    }
    return { loss, grad: Float32Array.from(acc) };
  }

  /**
   * The forward half of {@link lossAndGrad} on the same heap buffers: both products (K×Bp), the
   * logits read out of them, then the softmax pass (the SIMD kernels, else {@link softmaxSums}),
   * from whose exponentials and sums p = exp((lt − mt)/T) / St and log q = (ls − ms)/T − log Ss.
   */
  similarities(inputs: StepInputs): Similarities {
    const { batch, temperature } = inputs;
    const { K, bp, ws, heap } = this.products(inputs);
    // The raw student similarities (K×Bp), kept: the softmax pass overwrites them.
    const rawS = heap.f32(ws.ls, K * bp).slice();
    const invT = 1 / temperature;
    const teacherLogits = new Float32Array(batch * K);
    const studentLogits = new Float32Array(batch * K);
    {
      const lt = heap.f32(ws.lt, K * bp);
      for (let k = 0; k < K; k++) {
        for (let i = 0; i < batch; i++) {
          teacherLogits[i * K + k] = lt[k * bp + i]! * invT;
          studentLogits[i * K + k] = rawS[k * bp + i]! * invT;
        }
      }
    }
    // The SIMD pass allocates its scratch first: heap views are taken after it.
    const sums: SoftmaxSums =
      this.simd !== null
        ? this.simd.sums(ws.lt, ws.ls, K, bp, temperature)
        : softmaxSums(heap.f32(ws.lt, K * bp), heap.f32(ws.ls, K * bp), K, bp, temperature);
    const et = heap.f32(ws.lt, K * bp);
    const teacherProbs = new Float32Array(batch * K);
    const studentLogProbs = new Float32Array(batch * K);
    for (let i = 0; i < batch; i++) {
      const invSt = 1 / sums.st[i]!;
      const ms = sums.ms[i]!;
      const logSs = Math.log(sums.ss[i]!);
      for (let k = 0; k < K; k++) {
        teacherProbs[i * K + k] = et[k * bp + i]! * invSt;
        studentLogProbs[i * K + k] = (rawS[k * bp + i]! - ms) * invT - logSs;
      }
    }
    return { teacherLogits, studentLogits, teacherProbs, studentLogProbs };
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

/** B rounded up to the SIMD width. */
function padded(b: number): number {
  return (b + 3) & ~3;
}

/** out[D×Bp] = xᵀ for x: B×D row-major, columns B…Bp−1 zero. */
function transposeInto(x: Float32Array, b: number, d: number, bp: number, out: Float32Array): void {
  out.fill(0);
  for (let i = 0; i < b; i++) {
    const o = i * d;
    for (let j = 0; j < d; j++) out[j * bp + i] = x[o + j]!;
  }
}
