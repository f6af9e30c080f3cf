import { freemem } from 'node:os';
import { CompressError, formatBytes } from '@compress/core';
import {
  createNativeSession,
  encodeOnnxModel,
  isOnnxRuntimeNativeAvailable,
  FLOAT as ONNX_FLOAT,
  INT64 as ONNX_INT64,
  type OnnxNode,
  type OnnxValue,
  type OrtNative,
  type OrtNativeSession,
  requireOnnxRuntimeNative,
} from '@compress/onnx';
import { jsStorage, type QueueStorage } from '../storage.js';
import type { LossAndGrad, LossEngine, Similarities, StepInputs } from './engine.js';

/**
 * The loss on onnxruntime-node (an optional peer dependency): one small graph per temperature does
 * the whole step — both similarity products, log-softmax, KL, and d loss/d sn = (q − p)·Qs/(B·T) —
 * with onnxruntime's native matrix product (256-bit FMA where the CPU has it), several times the
 * throughput of the WebAssembly products. Queues are plain Float32Arrays that the graph reads in
 * place. `similarities` runs a second graph made of the step graph's first nodes, with the logits,
 * p and log q as its outputs.
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

const v = (name: string, shape: (number | string)[], t: 1 | 7 = ONNX_FLOAT): OnnxValue => ({
  name,
  elemType: t,
  shape,
});

/** The nodes both graphs share: logits lt, ls / T (B×K), their log-softmaxes logp, logq, and p. */
function similarityNodes(temperature: number): OnnxNode[] {
  const invT = 1 / temperature;
  return [
    // Similarities / T, B×K (log-softmax form: no exponent overflows, whatever T).
    { opType: 'Gemm', inputs: ['tn', 'qt'], outputs: ['lt'], ints: { transB: 1 }, floats: { alpha: invT } },
    { opType: 'Gemm', inputs: ['sn', 'qs'], outputs: ['ls'], ints: { transB: 1 }, floats: { alpha: invT } },
    { opType: 'LogSoftmax', inputs: ['lt'], outputs: ['logp'], ints: { axis: 1 } },
    { opType: 'LogSoftmax', inputs: ['ls'], outputs: ['logq'], ints: { axis: 1 } },
    { opType: 'Exp', inputs: ['logp'], outputs: ['p'] },
  ];
}

const queueAndFeatureInputs = (): OnnxValue[] => [
  v('qt', ['k', 'dt']),
  v('qs', ['k', 'ds']),
  v('tn', ['b', 'dt']),
  v('sn', ['b', 'ds']),
];

/** The graph of one step at temperature T: inputs qt, qs (K×D), tn, sn (B×D), axes [1], scale [1]. */
function lossModel(temperature: number): Uint8Array {
  return encodeOnnxModel({
    name: 'compress-loss',
    opset: 13,
    nodes: [
      ...similarityNodes(temperature),
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
    inputs: [...queueAndFeatureInputs(), v('axes', [1], ONNX_INT64), v('scale', [1])],
    outputs: [v('loss', []), v('grad', ['b', 'ds'])],
  });
}

/**
 * The similarities of the step graph's first nodes as outputs (B×K each): lt, ls, p, logq. A graph
 * of its own, run only by `similarities`, so the step graph computes nothing more than the step.
 */
function similaritiesModel(temperature: number): Uint8Array {
  return encodeOnnxModel({
    name: 'compress-loss-similarities',
    opset: 13,
    nodes: similarityNodes(temperature),
    inputs: queueAndFeatureInputs(),
    outputs: [v('lt', ['b', 'k']), v('ls', ['b', 'k']), v('p', ['b', 'k']), v('logq', ['b', 'k'])],
  });
}

export class OnnxLossEngine implements LossEngine {
  readonly name = 'onnxruntime' as const;
  private readonly ort: OrtNative;
  private readonly threads: number;
  /** Step graphs by temperature. */
  private readonly sessions = new Map<number, OrtNativeSession>();
  /** Similarity graphs by temperature (made on the first {@link similarities}). */
  private readonly similaritySessions = new Map<number, OrtNativeSession>();
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

  private session(
    temperature: number,
    sessions = this.sessions,
    model: (temperature: number) => Uint8Array = lossModel,
  ): OrtNativeSession {
    let s = sessions.get(temperature);
    if (s === undefined) {
      s = createNativeSession(this.ort, model(temperature), {
        threads: this.threads,
        // onnxruntime's pool threads spin for a while after each run by default, taking the cores
        // the student's forward and backward need next.
        spinning: false,
        user: "CompressLoss: engine 'onnxruntime'",
      });
      sessions.set(temperature, s);
    }
    return s;
  }

  /** The queues (in place) and the batch's normalised features as the graphs' inputs. */
  private batchFeeds({ teacherQueue, studentQueue, tn, sn, batch }: StepInputs) {
    const K = teacherQueue.size;
    const dt = teacherQueue.dim;
    const ds = studentQueue.dim;
    const { Tensor } = this.ort;
    return {
      qt: new Tensor('float32', teacherQueue.storage.view(), [K, dt]),
      qs: new Tensor('float32', studentQueue.storage.view(), [K, ds]),
      tn: new Tensor('float32', tn.subarray(0, batch * dt), [batch, dt]),
      sn: new Tensor('float32', sn.subarray(0, batch * ds), [batch, ds]),
    };
  }

  lossAndGrad(inputs: StepInputs): LossAndGrad {
    const { batch, temperature } = inputs;
    const { Tensor } = this.ort;
    const out = this.session(temperature).run(
      {
        ...this.batchFeeds(inputs),
        axes: new Tensor('int64', BigInt64Array.of(1n), [1]),
        scale: new Tensor('float32', Float32Array.of(1 / (batch * temperature)), [1]),
      },
      { loss: null, grad: null },
      {},
    );
    const loss = (out.loss!.data as Float32Array)[0]!;
    return { loss, grad: Float32Array.from(out.grad!.data as Float32Array) };
  }

  similarities(inputs: StepInputs): Similarities {
    const { temperature } = inputs;
    const out = this.session(temperature, this.similaritySessions, similaritiesModel).run(
      this.batchFeeds(inputs),
      { lt: null, ls: null, p: null, logq: null },
      {},
    );
    const get = (name: 'lt' | 'ls' | 'p' | 'logq') => Float32Array.from(out[name]!.data as Float32Array);
    return {
      teacherLogits: get('lt'),
      studentLogits: get('ls'),
      teacherProbs: get('p'),
      studentLogProbs: get('logq'),
    };
  }

  dispose(): void {
    for (const sessions of [this.sessions, this.similaritySessions]) {
      for (const s of sessions.values()) s.dispose?.();
      sessions.clear();
    }
  }
}
