import { assertUnreachable, CompressError, type FeatureMatrix } from '@compress/core';
import type { LoaderBatch } from '@compress/data';
import { ClusterClassifier, CompressLoss, RegBnLoss, RegLoss } from '@compress/losses';
import { KeyEncoder, type Student } from '@compress/students';
import * as tf from '@tensorflow/tfjs-core';
import type { LossOptions, Method } from './options.js';

/** What one training method needs from the loop: its loss, its variables, its state. */
export interface Objective {
  readonly method: Method;
  /** Whether the loss reads teacher features of the batch. */
  readonly needsTeacher: boolean;
  /** Trainable variables besides the student's (heads, projections, classifiers). */
  readonly variables: tf.Variable[];
  /** Named variables saved in checkpoints with their optimizer buffers. */
  namedVariables(): Record<string, tf.Variable>;
  /** Work before the tape (momentum: EMA update, then key features of the batch). */
  prepare(student: Student, x: tf.Tensor4D): void;
  /** The loss of the batch, inside the gradient tape. */
  loss(student: Student, x: tf.Tensor4D, batch: LoaderBatch, teacher: FeatureMatrix | null): tf.Scalar;
  /** Work after the optimizer step (write the batch into the queues). */
  finish(): void;
  /** The key encoder of the momentum variant (for checkpoints), else null. */
  readonly key: Student | null;
  /** State besides variables (queues, pointers), for checkpoints. */
  state(): unknown;
  restore(state: unknown): void;
  dispose(): void;
}

export interface ObjectiveContext {
  /** Seed of the queues' and heads' initial values. */
  seed: number;
  loss: LossOptions;
  /** Images per step (the queue-size rule compares K with it). */
  batchSize: number;
  student: Student;
  teacherDim: number;
  /** Images the training visits (the queue-size rule compares K with it). */
  trainSize: number;
  numClasses: number;
  /** CC: the k-means cluster of every dataset index. */
  pseudoLabels?: Int32Array;
  /** Where the CompRess loss computes (the tfjs step) and keeps its queues. @default 'auto' */
  lossEngine?: 'auto' | 'onnxruntime' | 'wasm' | 'tfjs';
  warn: (message: string) => void;
}

export class CompressObjective implements Objective {
  readonly needsTeacher = true;
  readonly key: Student | null;
  private readonly encoder: KeyEncoder | null;
  private keyFeatures: tf.Tensor2D | null = null;
  readonly loss_: CompressLoss;

  constructor(
    readonly method: 'momentum' | 'no-momentum' | 'one-queue',
    ctx: ObjectiveContext,
  ) {
    const { loss, student } = ctx;
    this.loss_ = new CompressLoss({
      variant: method,
      teacherDim: ctx.teacherDim,
      studentDim: student.spec.featureDim,
      queueSize: loss.queueSize,
      temperature: loss.temperature,
      seed: ctx.seed,
      batchSize: ctx.batchSize,
      datasetSize: ctx.trainSize,
      onWarning: ctx.warn,
      ...(ctx.lossEngine ? { engine: ctx.lossEngine } : {}),
    });
    this.encoder = method === 'momentum' ? KeyEncoder.of(student, loss.keyMomentum) : null;
    this.key = this.encoder?.model ?? null;
  }

  get variables(): tf.Variable[] {
    return this.loss_.trainableVariables;
  }

  namedVariables(): Record<string, tf.Variable> {
    const [w, b] = this.loss_.trainableVariables;
    return w && b ? { 'head.weight': w, 'head.bias': b } : {};
  }

  prepare(student: Student, x: tf.Tensor4D): void {
    if (!this.encoder) return;
    // The paper's order (train_student.py): momentum-update the key encoder, then key features.
    this.encoder.update(student);
    this.keyFeatures = this.encoder.features(x);
  }

  loss(student: Student, x: tf.Tensor4D, _batch: LoaderBatch, teacher: FeatureMatrix | null): tf.Scalar {
    return this.loss_.forward(teacher!, student.features(x), this.keyFeatures ?? undefined);
  }

  finish(): void {
    this.loss_.update();
    this.keyFeatures?.dispose();
    this.keyFeatures = null;
  }

  state(): unknown {
    return this.loss_.state();
  }

  restore(state: unknown): void {
    this.loss_.restore(state as ReturnType<CompressLoss['state']>);
  }

  dispose(): void {
    this.keyFeatures?.dispose();
    this.encoder?.dispose();
    this.loss_.dispose();
  }
}

export class RegObjective implements Objective {
  readonly needsTeacher = true;
  readonly key = null;
  readonly reg: RegLoss;

  constructor(
    readonly method: 'reg' | 'reg-bn',
    ctx: ObjectiveContext,
  ) {
    const options = {
      teacherDim: ctx.teacherDim,
      studentDim: ctx.student.spec.featureDim,
      seed: ctx.seed,
    };
    this.reg = method === 'reg-bn' ? new RegBnLoss(options) : new RegLoss(options);
  }

  get variables(): tf.Variable[] {
    return this.reg.trainableVariables;
  }

  namedVariables(): Record<string, tf.Variable> {
    const out: Record<string, tf.Variable> = {
      'projection.weight': this.reg.projection.weight,
      'projection.bias': this.reg.projection.bias,
    };
    if (this.reg.gamma) out['bn.weight'] = this.reg.gamma;
    if (this.reg.beta) out['bn.bias'] = this.reg.beta;
    if (this.reg.runningMean) out['bn.running_mean'] = this.reg.runningMean;
    if (this.reg.runningVar) out['bn.running_var'] = this.reg.runningVar;
    return out;
  }

  prepare(): void {}

  loss(student: Student, x: tf.Tensor4D, _batch: LoaderBatch, teacher: FeatureMatrix | null): tf.Scalar {
    const t = teacher!;
    return this.reg.forward(tensor2d(t), student.features(x), true);
  }

  finish(): void {}
  state(): unknown {
    return null;
  }
  restore(): void {}
  dispose(): void {
    this.reg.dispose();
  }
}

/** CC (k-means pseudo-labels from the teacher) and supervised (true labels): a linear classifier. */
export class ClassifierObjective implements Objective {
  readonly key = null;
  readonly needsTeacher = false;
  readonly classifier: ClusterClassifier;
  readonly classes: number;

  constructor(
    readonly method: 'cc' | 'supervised',
    ctx: ObjectiveContext,
    private readonly pseudoLabels: Int32Array | null,
  ) {
    const clusters = method === 'cc' ? ctx.loss.ccClusters : ctx.numClasses;
    this.classes = clusters;
    this.classifier = new ClusterClassifier({
      studentDim: ctx.student.spec.featureDim,
      clusters,
      seed: ctx.seed,
    });
  }

  get variables(): tf.Variable[] {
    return this.classifier.trainableVariables;
  }

  namedVariables(): Record<string, tf.Variable> {
    return {
      'classifier.weight': this.classifier.classifier.weight,
      'classifier.bias': this.classifier.classifier.bias,
    };
  }

  prepare(): void {}

  /** The batch's classes: k-means pseudo-labels (CC) or the true labels (supervised). */
  labels(batch: LoaderBatch): Int32Array {
    return this.pseudoLabels
      ? ClusterClassifier.pseudoLabels(this.pseudoLabels, batch.indices)
      : batch.labels;
  }

  loss(student: Student, x: tf.Tensor4D, batch: LoaderBatch): tf.Scalar {
    return this.classifier.forward(student.features(x), this.labels(batch));
  }

  finish(): void {}
  state(): unknown {
    return null;
  }
  restore(): void {}
  dispose(): void {
    this.classifier.dispose();
  }
}

function tensor2d(f: FeatureMatrix): tf.Tensor2D {
  return tf.tensor2d(f.data, [f.rows, f.dim]);
}

/** The objective of a method (an exhaustive switch over the closed union). */
export function createObjective(method: Method, ctx: ObjectiveContext): Objective {
  switch (method) {
    case 'momentum':
    case 'no-momentum':
    case 'one-queue':
      return new CompressObjective(method, ctx);
    case 'reg':
    case 'reg-bn':
      return new RegObjective(method, ctx);
    case 'cc':
      if (!ctx.pseudoLabels) {
        throw new CompressError(
          'INVALID_ARGUMENT',
          'the CC baseline needs k-means pseudo-labels of the teacher features',
          {
            input: 'pseudoLabels',
          },
        );
      }
      return new ClassifierObjective('cc', ctx, ctx.pseudoLabels);
    case 'supervised':
      return new ClassifierObjective('supervised', ctx, null);
    default:
      return assertUnreachable(method, 'method');
  }
}
