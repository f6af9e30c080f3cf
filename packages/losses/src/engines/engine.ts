import type { MemoryQueue } from '../queue.js';
import type { QueueStorage } from '../storage.js';

/** Loss and gradient of one step, taken against the queues as they are (before this batch is written). */
export interface LossAndGrad {
  loss: number;
  /** d loss / d sn, B×Ds row-major (sn: the normalised student features, or head outputs). */
  grad: Float32Array;
}

/**
 * Computes the CompRess loss for normalised features against the queues. `wasm` reads queues in the
 * tfjs wasm heap through XNNPACK; `tfjs` uses TensorFlow.js ops on whatever backend is active;
 * `onnxruntime` runs one native graph per step on onnxruntime-node.
 */
export interface LossEngine {
  readonly name: 'wasm' | 'tfjs' | 'onnxruntime';
  /** Storage for a queue of `length` floats. */
  storage(length: number, what: string): QueueStorage;
  /** Reserves per-step memory for batches of up to `batch` rows (throws OUT_OF_MEMORY when it cannot). */
  reserve(batch: number, size: number, studentDim: number, teacherDim: number): void;
  /**
   * `tn`: B×Dt normalised teacher features; `sn`: B×Ds normalised student features;
   * `studentQueue`: the queue `sn` is compared with (the teacher queue for one-queue).
   */
  lossAndGrad(
    teacherQueue: MemoryQueue,
    studentQueue: MemoryQueue,
    tn: Float32Array,
    sn: Float32Array,
    batch: number,
    temperature: number,
  ): LossAndGrad;
  /** Bytes of per-step memory currently reserved. */
  readonly reservedBytes: number;
  dispose(): void;
}
