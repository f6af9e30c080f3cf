import * as tf from '@tensorflow/tfjs-core';
import type { MemoryQueue } from '../queue.js';
import { jsStorage, type QueueStorage } from '../storage.js';
import type { LossAndGrad, LossEngine, Similarities, StepInputs } from './engine.js';

/**
 * The loss in TensorFlow.js ops on the active backend (any backend; the reference the `wasm`
 * engine is tested against). Queues are plain Float32Arrays, uploaded as tensors for each step.
 */
export class TfjsEngine implements LossEngine {
  readonly name = 'tfjs' as const;
  readonly reservedBytes = 0;

  storage(length: number, what: string): QueueStorage {
    return jsStorage(length, what);
  }

  reserve(): void {}

  lossAndGrad(inputs: StepInputs): LossAndGrad {
    const { studentQueue, batch, temperature } = inputs;
    const [loss, grad] = tf.tidy(() => {
      const s = similarities(inputs);
      // KL(p‖q) with batchmean: (1/B) Σ p (log p − log q).
      const loss = tf.div(tf.sum(tf.mul(s.p, tf.sub(s.logp, s.logq))), batch);
      // d loss / d sn = ((q − p) / (B·T)) · Qs: B×Ds.
      const qs = queueTensor(studentQueue);
      const grad = tf.matMul(tf.div(tf.sub(tf.exp(s.logq), s.p), batch * temperature), qs);
      return [loss, grad];
    });
    const out = { loss: loss.dataSync()[0]!, grad: grad.dataSync() as Float32Array };
    tf.dispose([loss, grad]);
    return out;
  }

  similarities(inputs: StepInputs): Similarities {
    const out = tf.tidy(() => {
      const s = similarities(inputs);
      return [s.lt, s.ls, s.p, s.logq];
    });
    const [lt, ls, p, logq] = out.map((t) => t.dataSync() as Float32Array) as [
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
    ];
    tf.dispose(out);
    return { teacherLogits: lt, studentLogits: ls, teacherProbs: p, studentLogProbs: logq };
  }

  dispose(): void {}
}

/** Similarities as tensors (B×K each): logits / T, p, log p, log q. */
export function similarities({ teacherQueue, studentQueue, tn, sn, batch, temperature }: StepInputs): {
  lt: tf.Tensor2D;
  ls: tf.Tensor2D;
  p: tf.Tensor2D;
  logp: tf.Tensor2D;
  logq: tf.Tensor2D;
} {
  const t = tf.tensor2d(tn, [batch, teacherQueue.dim]);
  const s = tf.tensor2d(sn, [batch, studentQueue.dim]);
  // logits: B×K, against the queues before this batch is written.
  const lt = tf.div(tf.matMul(t, queueTensor(teacherQueue), false, true), temperature) as tf.Tensor2D;
  const ls = tf.div(tf.matMul(s, queueTensor(studentQueue), false, true), temperature) as tf.Tensor2D;
  const logp = tf.logSoftmax(lt);
  const logq = tf.logSoftmax(ls);
  return { lt, ls, p: tf.exp(logp), logp, logq };
}

function queueTensor(queue: MemoryQueue): tf.Tensor2D {
  // Copy out of a wasm heap view first: allocating the tensor may grow (and detach) that heap.
  const v = queue.storage.kind === 'wasm' ? queue.values().slice() : queue.values();
  return tf.tensor2d(v, [queue.size, queue.dim]);
}
