import { freemem } from 'node:os';
import { CompressError } from '@compress/core';
import {
  createNativeSession,
  encodeOnnxModel,
  isOnnxRuntimeNativeAvailable,
  FLOAT as ONNX_FLOAT,
  INT64 as ONNX_INT64,
  type OnnxValue,
  type OrtNative,
  type OrtNativeSession,
  requireOnnxRuntimeNative,
} from '@compress/onnx';
import type { MemoryQueue } from '../queue.js';
import { formatBytes, jsStorage, type QueueStorage } from '../storage.js';
import type { LossAndGrad, LossEngine } from './engine.js';

/**
 * The loss on onnxruntime-node (an optional peer dependency): one small graph per temperature does
 * the whole step — both similarity products, log-softmax, KL, and d loss/d sn = (q − p)·Qs/(B·T) —
 * with onnxruntime's native matrix product (256-bit FMA where the CPU has it), several times the
 * throughput of the WebAssembly products. Queues are plain Float32Arrays that the graph reads in
 * place.
 *
 * The loss is computed inside the training step's gradient tape, which is synchronous, so the
 * graph runs through onnxruntime-node's native session object, whose `run` is synchronous (the
 * package's public `InferenceSession.run` wraps that same call in a promise). That object is not
 * part of onnxruntime-node's documented API: {@link OnnxLossEngine.create} checks its shape and
 * fails with a clear error on a version where it differs.
 */

/** Whether onnxruntime-node is installed and usable (the `auto` engine's question). */
export function onnxRuntimeInstalled(): boolean {
  return isOnnxRuntimeNativeAvailable();
}

/** The graph of one step at temperature T: inputs qt, qs (K×D), tn, sn (B×D), axes [1], scale [1]. */
function lossModel(temperature: number): Uint8Array {
  const v = (name: string, shape: (number | string)[], t: 1 | 7 = ONNX_FLOAT): OnnxValue => ({
    name,
    elemType: t,
    shape,
  });
  const invT = 1 / temperature;
  return encodeOnnxModel({
    name: 'compress-loss',
    opset: 13,
    nodes: [
      // Similarities / T, B×K (log-softmax form: no exponent overflows, whatever T).
      { opType: 'Gemm', inputs: ['tn', 'qt'], outputs: ['lt'], ints: { transB: 1 }, floats: { alpha: invT } },
      { opType: 'Gemm', inputs: ['sn', 'qs'], outputs: ['ls'], ints: { transB: 1 }, floats: { alpha: invT } },
      { opType: 'LogSoftmax', inputs: ['lt'], outputs: ['logp'], ints: { axis: 1 } },
      { opType: 'LogSoftmax', inputs: ['ls'], outputs: ['logq'], ints: { axis: 1 } },
      { opType: 'Exp', inputs: ['logp'], outputs: ['p'] },
      { opType: 'Exp', inputs: ['logq'], outputs: ['q'] },
      // loss = (1/B) Σ_i Σ_k p_ik (log p_ik − log q_ik)
      { opType: 'Sub', inputs: ['logp', 'logq'], outputs: ['d'] },
      { opType: 'Mul', inputs: ['p', 'd'], outputs: ['pd'] },
      { opType: 'ReduceSum', inputs: ['pd', 'axes'], outputs: ['rowkl'], ints: { keepdims: 0 } },
      { opType: 'ReduceMean', inputs: ['rowkl'], outputs: ['loss'], ints: { keepdims: 0 } },
      // d loss/d sn = (q − p)·Qs / (B·T): B×Ds
      { opType: 'Sub', inputs: ['q', 'p'], outputs: ['g'] },
      { opType: 'MatMul', inputs: ['g', 'qs'], outputs: ['gq'] },
      { opType: 'Mul', inputs: ['gq', 'scale'], outputs: ['grad'] },
    ],
    inputs: [
      v('qt', ['k', 'dt']),
      v('qs', ['k', 'ds']),
      v('tn', ['b', 'dt']),
      v('sn', ['b', 'ds']),
      v('axes', [1], ONNX_INT64),
      v('scale', [1]),
    ],
    outputs: [v('loss', []), v('grad', ['b', 'ds'])],
  });
}

export class OnnxLossEngine implements LossEngine {
  readonly name = 'onnxruntime' as const;
  private readonly ort: OrtNative;
  private readonly threads: number;
  private readonly sessions = new Map<number, OrtNativeSession>();
  private reserved = 0;

  private constructor(ort: OrtNative, threads: number) {
    this.ort = ort;
    this.threads = threads;
  }

  /** The engine, or an error naming the missing package. `threads`: onnxruntime's intra-op threads (0: one per core). */
  static create(threads = 0): OnnxLossEngine {
    const ort = requireOnnxRuntimeNative({
      user: "CompressLoss: engine 'onnxruntime'",
      otherwise: "use engine 'wasm'/'tfjs'",
    });
    return new OnnxLossEngine(ort, threads);
  }

  storage(length: number, what: string): QueueStorage {
    return jsStorage(length, what);
  }

  /**
   * onnxruntime plans its own buffers: about ten B×K float32 matrices per step. Refused up front
   * (OUT_OF_MEMORY) when they exceed the memory the machine has free now.
   */
  reserve(batch: number, size: number): void {
    const need = OnnxLossEngine.workspaceBytes(batch, size);
    if (need > this.reserved && need > freemem()) {
      throw new CompressError(
        'OUT_OF_MEMORY',
        `onnxruntime's step buffers for B = ${batch}, K = ${size} need about ${formatBytes(need)}, more than the ${formatBytes(freemem())} free`,
        { input: 'queueSize' },
      );
    }
    this.reserved = Math.max(this.reserved, need);
  }

  /** Bytes of onnxruntime's per-step buffers for batches of `batch` rows against `size` queue rows. */
  static workspaceBytes(batch: number, size: number): number {
    return 40 * batch * size;
  }

  get reservedBytes(): number {
    return this.reserved;
  }

  private session(temperature: number): OrtNativeSession {
    let s = this.sessions.get(temperature);
    if (s === undefined) {
      s = createNativeSession(this.ort, lossModel(temperature), {
        threads: this.threads,
        // onnxruntime's pool threads spin for a while after each run by default, taking the cores
        // the student's forward and backward need next.
        spinning: false,
        user: "CompressLoss: engine 'onnxruntime'",
      });
      this.sessions.set(temperature, s);
    }
    return s;
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
    const { Tensor } = this.ort;
    const out = this.session(temperature).run(
      {
        qt: new Tensor('float32', teacherQueue.storage.view(), [K, dt]),
        qs: new Tensor('float32', studentQueue.storage.view(), [K, ds]),
        tn: new Tensor('float32', tn.subarray(0, batch * dt), [batch, dt]),
        sn: new Tensor('float32', sn.subarray(0, batch * ds), [batch, ds]),
        axes: new Tensor('int64', BigInt64Array.of(1n), [1]),
        scale: new Tensor('float32', Float32Array.of(1 / (batch * temperature)), [1]),
      },
      { loss: null, grad: null },
      {},
    );
    const loss = (out.loss!.data as Float32Array)[0]!;
    return { loss, grad: Float32Array.from(out.grad!.data as Float32Array) };
  }

  dispose(): void {
    for (const s of this.sessions.values()) s.dispose?.();
    this.sessions.clear();
  }
}
