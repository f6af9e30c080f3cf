import { assertFinite, CompressError, type FeatureMatrix, Rng } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import { type CompressLossOptions, type Resolved, resolve } from './compress-loss-options.js';
import { chooseEngine } from './engines/choose.js';
import type { LossEngine, Similarities } from './engines/engine.js';
import { rows } from './feature-rows.js';
import { Linear } from './linear.js';
import { normalizeBackward, normalizeRows, rowNorms } from './normalize.js';
import { outOfMemory } from './out-of-memory.js';
import { MemoryQueue, type MemoryQueueState } from './queue.js';
import { checkQueueSize } from './queue-size.js';
import { type VariantSpec, variantSpec } from './variants/spec.js';

export {
  type CompressLossOptions,
  defaultCompressLossOptions,
} from './compress-loss-options.js';
export type { Similarities } from './engines/engine.js';

/** Serialisable state of a {@link CompressLoss}: options, step, queues, head. */
export interface CompressLossState {
  kind: 'compress/compress-loss';
  version: 1;
  options: Omit<Resolved, 'engine' | 'batchSize' | 'threads'>;
  step: number;
  teacherQueue: MemoryQueueState;
  studentQueue: MemoryQueueState | null;
  head: { weight: Float32Array; bias: Float32Array } | null;
}

/** Input features: a FeatureMatrix or a B×D tensor. */
export type Features = FeatureMatrix | tf.Tensor2D;

interface Pending {
  batch: number;
  tn: Float32Array;
  studentRows: Float32Array | null;
}

/**
 * The CompRess loss: for every image, the student's softmax distribution over its similarities to a
 * queue of anchors is pulled towards the teacher's (KL(p‖q), batch mean), and the batch then joins
 * the queues (a ring buffer per queue).
 *
 * One training step, in this order:
 * 1. `forward(teacher, student, key?)` inside the gradient tape (`tf.variableGrads`,
 *    `optimizer.minimize`): returns the scalar loss against the queues as they are *before* this
 *    batch; gradients flow into `student` (and the one-queue head, {@link trainableVariables});
 * 2. the optimizer step;
 * 3. `update()`: writes the batch into the queues and advances the write pointer.
 *
 * @see https://arxiv.org/abs/2010.14713
 */
export class CompressLoss {
  readonly options: Readonly<Resolved>;
  readonly spec: VariantSpec;
  readonly teacherQueue: MemoryQueue;
  /** The student queue (`null` for one-queue, which compares against the teacher queue). */
  readonly studentQueue: MemoryQueue | null;
  /** The one-queue head Ds→Dt (`null` for the other variants). */
  readonly head: Linear | null;
  private readonly engine: LossEngine;
  private pending: Pending | null = null;
  private steps = 0;

  constructor(options: CompressLossOptions) {
    const o = resolve(options);
    this.options = o;
    this.spec = variantSpec(o.variant);
    const warn = options.onWarning ?? ((m: string) => console.warn(`CompressLoss: ${m}`));
    if (o.datasetSize !== undefined) {
      const w = checkQueueSize(o.queueSize, o.datasetSize);
      if (w !== null) warn(w);
    }
    this.engine = chooseEngine(o.engine, o.threads);
    const rng = new Rng(o.seed);
    const init = options.initial ?? {};
    const K = o.queueSize;
    const qDim = this.spec.studentQueue === null ? 0 : o.studentDim;
    let teacherQueue: MemoryQueue | null = null;
    let studentQueue: MemoryQueue | null = null;
    try {
      teacherQueue = MemoryQueue.create({
        size: K,
        dim: o.teacherDim,
        rng: rng.fork('queue:teacher'),
        storage: this.engine.storage(K * o.teacherDim, `teacher queue ${K}×${o.teacherDim}`),
        ...(init.teacherQueue ? { values: init.teacherQueue } : {}),
        ...(init.pointer !== undefined ? { pointer: init.pointer } : {}),
      });
      if (qDim > 0) {
        studentQueue = MemoryQueue.create({
          size: K,
          dim: qDim,
          rng: rng.fork('queue:student'),
          storage: this.engine.storage(K * qDim, `student queue ${K}×${qDim}`),
          ...(init.studentQueue ? { values: init.studentQueue } : {}),
          ...(init.pointer !== undefined ? { pointer: init.pointer } : {}),
        });
      }
      this.engine.reserve(o.batchSize, K, this.spec.head ? o.teacherDim : o.studentDim, o.teacherDim);
    } catch (e) {
      teacherQueue?.dispose();
      studentQueue?.dispose();
      this.engine.dispose();
      if (e instanceof CompressError && e.code === 'OUT_OF_MEMORY')
        throw outOfMemory(o, qDim, this.engine, e);
      throw e;
    }
    this.teacherQueue = teacherQueue;
    this.studentQueue = studentQueue;
    this.head = this.spec.head
      ? new Linear(
          o.studentDim,
          o.teacherDim,
          init.headWeight && init.headBias
            ? { weight: init.headWeight, bias: init.headBias }
            : rng.fork('head'),
          'one-queue head',
        )
      : null;
  }

  /** Which engine computes the loss. */
  get engineName(): 'wasm' | 'tfjs' | 'onnxruntime' {
    return this.engine.name;
  }

  /** Number of completed steps (calls of {@link update}). */
  get step(): number {
    return this.steps;
  }

  /** Variables the trainer's optimizer must update besides the student (the one-queue head). */
  get trainableVariables(): tf.Variable[] {
    return this.head?.variables ?? [];
  }

  /**
   * The loss of one batch (a scalar tensor), against the queues before this batch. Call it inside
   * the gradient tape; then step the optimizer; then {@link update}.
   *
   * @param teacher B×Dt teacher features (constants: no gradient).
   * @param student B×Ds student features: a tensor in the tape.
   * @param key B×Ds key-encoder features (momentum variant only; no gradient).
   */
  forward(teacher: Features, student: tf.Tensor2D, key?: Features): tf.Scalar {
    if (this.pending !== null) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `CompressLoss step ${this.steps}: forward() was called again before update(); call update() after the optimizer step (or discard() to drop the pending batch)`,
        { input: 'forward' },
      );
    }
    const { batch, tn, keyRows } = this.prepare(teacher, student, key);
    const o = this.options;
    const queueForStudent = this.studentQueue ?? this.teacherQueue;
    const head = this.head;
    let studentRows: Float32Array | null = null;
    // One custom-gradient node for the whole loss: tfjs-core registers no gradients by itself in
    // Node, and the analytic gradient avoids the transposed products that are slow on wasm.
    const lossOf = tf.customGrad(((...args: unknown[]) => {
      const [s, w, b] = args as [tf.Tensor2D, tf.Tensor2D | undefined, tf.Tensor1D | undefined];
      const save = args.at(-1) as (tensors: tf.Tensor[]) => void;
      // The backward of the head needs s and W: only saved tensors outlive the forward's scope.
      if (w && b) save([s, w]);
      // h = s (two queues) or s·W + b (one-queue head): B×Dh.
      const hT = w && b ? tf.add(tf.matMul(s, w), b) : s;
      const dh = hT.shape[1]!;
      const hv = hT.dataSync() as Float32Array;
      // sn = h / ‖h‖₂ per row (the paper's Normalize, no epsilon).
      const sn = normalizeRows(hv, dh);
      const norms = rowNorms(hv, dh);
      this.checkFinite(
        sn,
        batch,
        head
          ? 'normalised head outputs (a zero row has no direction)'
          : 'normalised studentFeats (a zero row has no direction)',
      );
      const { loss, grad } = this.engine.lossAndGrad({
        teacherQueue: this.teacherQueue,
        studentQueue: queueForStudent,
        tn,
        sn,
        batch,
        temperature: o.temperature,
      });
      if (!Number.isFinite(loss)) {
        throw new CompressError(
          'NON_FINITE',
          `CompressLoss step ${this.steps}: the loss is ${loss} although the inputs are finite; the queues were not changed`,
          { input: 'loss' },
        );
      }
      studentRows = this.spec.studentQueue === 'student' ? sn : null;
      // d loss/d h_i = (g_i − (g_i·sn_i) sn_i) / ‖h_i‖: B×Dh.
      const gh = normalizeBackward(grad, sn, norms, dh);
      return {
        value: tf.scalar(loss),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          tf.tidy(() => {
            const g = tf.mul(dy, tf.tensor2d(gh, [batch, dh])) as tf.Tensor2D;
            if (!(w && b)) return [g];
            return Linear.backward(saved[0] as tf.Tensor2D, saved[1] as tf.Tensor2D, g);
          }),
      };
    }) as unknown as Parameters<typeof tf.customGrad<tf.Scalar>>[0]);
    const value = head === null ? lossOf(student) : lossOf(student, head.weight, head.bias);
    this.pending = { batch, tn, studentRows: this.spec.studentQueue === 'key' ? keyRows : studentRows };
    return value;
  }

  /**
   * Writes the batch of the last {@link forward} into the queues (the paper's `dequeue_and_enqueue`)
   * and returns the queue rows written.
   */
  update(): Int32Array {
    const p = this.pending;
    if (p === null) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `CompressLoss step ${this.steps}: update() needs a forward() first (one forward, then the optimizer step, then update)`,
        { input: 'update' },
      );
    }
    const rows = this.teacherQueue.enqueue(p.tn);
    if (this.studentQueue !== null && p.studentRows !== null) this.studentQueue.enqueue(p.studentRows);
    this.pending = null;
    this.steps++;
    return rows;
  }

  /**
   * Writes a step computed elsewhere (a whole-step graph with this loss's formulas) into the
   * queues: `teacherRows` B×Dt normalised teacher features and, for the variants with a student
   * queue, `studentRows` B×Ds (the key encoder's or the student's normalised features); counts the
   * step as {@link update} does.
   */
  enqueue(teacherRows: Float32Array, studentRows: Float32Array | null): Int32Array {
    if (this.pending !== null) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `CompressLoss step ${this.steps}: enqueue() while a forward() is pending; call update() or discard() first`,
        { input: 'enqueue' },
      );
    }
    const batch = teacherRows.length / this.options.teacherDim;
    if (!Number.isInteger(batch) || batch < 1 || batch > this.options.queueSize) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `CompressLoss step ${this.steps}: teacherRows must hold 1 to K rows of ${this.options.teacherDim}, found ${teacherRows.length} values`,
        { input: 'teacherRows' },
      );
    }
    if ((this.studentQueue === null) !== (studentRows === null)) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `CompressLoss step ${this.steps}: the '${this.options.variant}' variant ${this.studentQueue ? 'needs' : 'takes no'} studentRows`,
        { input: 'studentRows' },
      );
    }
    if (studentRows !== null && studentRows.length !== batch * this.studentQueue!.dim) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `CompressLoss step ${this.steps}: studentRows must be ${batch}×${this.studentQueue!.dim}, found ${studentRows.length} values`,
        { input: 'studentRows' },
      );
    }
    const rows = this.teacherQueue.enqueue(teacherRows);
    if (studentRows !== null) this.studentQueue!.enqueue(studentRows);
    this.steps++;
    return rows;
  }

  /** Drops the batch of the last {@link forward} without writing it (e.g. after an evaluation pass). */
  discard(): void {
    this.pending = null;
  }

  /**
   * Logits, p and log q of a batch against the current queues, computed by the loss's engine with
   * the arithmetic of its {@link forward} (nothing is written).
   */
  similarities(teacher: Features, student: tf.Tensor2D, key?: Features): Similarities {
    const { batch, tn } = this.prepare(teacher, student, key);
    const h = this.head === null ? student : this.head.apply(student);
    const sn = normalizeRows(h.dataSync() as Float32Array, h.shape[1]);
    if (h !== student) h.dispose();
    this.checkFinite(
      sn,
      batch,
      this.head
        ? 'normalised head outputs (a zero row has no direction)'
        : 'normalised studentFeats (a zero row has no direction)',
    );
    return this.engine.similarities({
      teacherQueue: this.teacherQueue,
      studentQueue: this.studentQueue ?? this.teacherQueue,
      tn,
      sn,
      batch,
      temperature: this.options.temperature,
    });
  }

  /** Options, step, queues (values + pointer) and head, for a checkpoint. */
  state(): CompressLossState {
    const { engine: _e, batchSize: _b, threads: _t, ...options } = this.options;
    return {
      kind: 'compress/compress-loss',
      version: 1,
      options,
      step: this.steps,
      teacherQueue: this.teacherQueue.state(),
      studentQueue: this.studentQueue?.state() ?? null,
      head: this.head?.state() ?? null,
    };
  }

  /** Restores {@link state} exactly; refuses a state made with other options. */
  restore(state: CompressLossState): void {
    if (state?.kind !== 'compress/compress-loss' || state.version !== 1) {
      throw new CompressError(
        'MISMATCH',
        `not a CompressLoss state: expected kind 'compress/compress-loss' version 1, found ${JSON.stringify(state?.kind)} version ${state?.version}`,
        { input: 'state' },
      );
    }
    const mine = this.options;
    // The seed only made the initial values, which the state replaces.
    for (const key of ['variant', 'teacherDim', 'studentDim', 'queueSize', 'temperature'] as const) {
      if (mine[key] !== state.options[key]) {
        throw new CompressError(
          'MISMATCH',
          `CompressLoss state was made with ${key} = ${JSON.stringify(state.options[key])}, this loss has ${JSON.stringify(mine[key])}`,
          { input: `state.options.${key}` },
        );
      }
    }
    this.teacherQueue.load(state.teacherQueue);
    if (this.studentQueue !== null) {
      if (state.studentQueue === null) {
        throw new CompressError('MISMATCH', 'CompressLoss state has no student queue', {
          input: 'state.studentQueue',
        });
      }
      this.studentQueue.load(state.studentQueue);
    }
    if (this.head !== null) {
      if (state.head === null) {
        throw new CompressError('MISMATCH', 'CompressLoss state has no one-queue head', {
          input: 'state.head',
        });
      }
      this.head.load(state.head);
    }
    this.steps = state.step;
    this.pending = null;
  }

  /** Frees the queues (wasm heap included), the workspace and the head. */
  dispose(): void {
    this.teacherQueue.dispose();
    this.studentQueue?.dispose();
    this.head?.dispose();
    this.engine.dispose();
  }

  /** Validates shapes and values and normalises the constant inputs. Touches no queue. */
  private prepare(
    teacher: Features,
    student: tf.Tensor2D,
    key: Features | undefined,
  ): { batch: number; tn: Float32Array; keyRows: Float32Array | null } {
    const o = this.options;
    if (!(student instanceof tf.Tensor) || student.rank !== 2 || student.shape[1] !== o.studentDim) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `CompressLoss step ${this.steps}: studentFeats must be a B×${o.studentDim} tensor, found ${student instanceof tf.Tensor ? `shape [${student.shape}]` : typeof student}`,
        { input: 'studentFeats' },
      );
    }
    const batch = student.shape[0];
    if (batch < 1 || batch > o.queueSize) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `CompressLoss step ${this.steps}: batch size must be between 1 and K = ${o.queueSize}, found ${batch}`,
        { input: 'studentFeats' },
      );
    }
    const t = rows(teacher, batch, o.teacherDim, 'teacherFeats', this.steps);
    this.checkFinite(t, batch, 'teacherFeats');
    this.checkFinite(student.dataSync() as Float32Array, batch, 'studentFeats');
    let keyRows: Float32Array | null = null;
    if (this.spec.studentQueue === 'key') {
      if (key === undefined) {
        throw new CompressError(
          'INVALID_ARGUMENT',
          `CompressLoss step ${this.steps}: the momentum variant needs keyFeats (the key encoder's B×${o.studentDim} features)`,
          { input: 'keyFeats' },
        );
      }
      const k = rows(key, batch, o.studentDim, 'keyFeats', this.steps);
      this.checkFinite(k, batch, 'keyFeats');
      keyRows = normalizeRows(k, o.studentDim);
      this.checkFinite(keyRows, batch, 'normalised keyFeats (a zero row has no direction)');
    } else if (key !== undefined) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `CompressLoss step ${this.steps}: keyFeats is only used by the momentum variant, this loss is '${o.variant}'`,
        { input: 'keyFeats' },
      );
    }
    const tn = normalizeRows(t, o.teacherDim);
    this.checkFinite(tn, batch, 'normalised teacherFeats (a zero row has no direction)');
    return { batch, tn, keyRows };
  }

  private checkFinite(data: Float32Array, batch: number, name: string): void {
    try {
      assertFinite(
        { rows: batch, dim: data.length / batch, data },
        `CompressLoss step ${this.steps}: ${name}`,
      );
    } catch (e) {
      if (e instanceof CompressError) {
        throw new CompressError(e.code, `${e.message}; the queues were not changed`, { input: name });
      }
      throw e;
    }
  }
}
