import type { MemoryQueue } from '../queue.js';
import type { QueueStorage } from '../storage.js';

/** Loss and gradient of one step, taken against the queues as they are (before this batch is written). */
export interface LossAndGrad {
  loss: number;
  /** d loss / d sn, B×Ds row-major (sn: the normalised student features, or head outputs). */
  grad: Float32Array;
}

/** Similarities of one batch against the current queues (for inspection and tests), each B×K row-major. */
export interface Similarities {
  /** <tn_i, Qt_k> / T. */
  teacherLogits: Float32Array;
  /** <sn_i, Qs_k> / T (one-queue: against the teacher queue). */
  studentLogits: Float32Array;
  /** p = softmax(teacherLogits). */
  teacherProbs: Float32Array;
  /** log q = log_softmax(studentLogits). */
  studentLogProbs: Float32Array;
}

/** What a step's loss (or its similarities) is computed from. */
export interface StepInputs {
  teacherQueue: MemoryQueue;
  /** The queue `sn` is compared with (the teacher queue for one-queue). */
  studentQueue: MemoryQueue;
  /** B×Dt normalised teacher features. */
  tn: Float32Array;
  /** B×Ds normalised student features (or head outputs). */
  sn: Float32Array;
  batch: number;
  temperature: number;
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
  /** The loss of a batch and its gradient, against the queues as they are. */
  lossAndGrad(inputs: StepInputs): LossAndGrad;
  /**
   * The logits, p and log q of the same products and softmax arithmetic as {@link lossAndGrad}
   * (the same inputs), against the queues as they are; writes nothing.
   */
  similarities(inputs: StepInputs): Similarities;
  /** Bytes of per-step memory currently reserved. */
  readonly reservedBytes: number;
  dispose(): void;
}
