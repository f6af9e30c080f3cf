import { CompressError, Rng } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import { Linear } from './linear.js';

/** What the trainer needs from a baseline loss of the paper's Table 1. */
export interface BaselineLoss {
  /** Variables the optimizer must update besides the student. */
  readonly trainableVariables: tf.Variable[];
  dispose(): void;
}

/** Options of {@link RegLoss}. */
export interface RegLossOptions {
  teacherDim: number;
  studentDim: number;
  /** Seed of the projection's initial values. @default 0 */
  seed?: number | string;
  /**
   * Batch normalisation (affine, batch statistics in training) on the projection: the paper's
   * Reg-BN baseline. @default false — plain Reg.
   */
  batchNorm?: boolean;
  /** BatchNorm epsilon. @default 1e-5 — PyTorch's BatchNorm1d. */
  epsilon?: number;
  /** BatchNorm running-statistics momentum. @default 0.1 — PyTorch's BatchNorm1d. */
  momentum?: number;
}

/**
 * The paper's **Reg** baseline: a linear projection Ds→Dt of the student feature regresses the
 * L2-normalised teacher feature,
 *
 *   loss = (1/(B·Dt)) Σ_i ‖W·s_i + b − t_i/‖t_i‖‖²     (PyTorch `nn.MSELoss`, mean over all entries)
 *
 * and **Reg-BN** (`batchNorm: true`, or {@link RegBnLoss}): the projection goes through
 * BatchNorm1d(Dt) (γ = 1, β = 0 initially; batch mean and biased variance in training, running
 * statistics, updated with the unbiased variance, in evaluation) before the MSE.
 */
export class RegLoss implements BaselineLoss {
  readonly projection: Linear;
  readonly batchNorm: boolean;
  /** γ, β of the BatchNorm (Reg-BN only). */
  readonly gamma: tf.Variable<tf.Rank.R1> | null;
  readonly beta: tf.Variable<tf.Rank.R1> | null;
  /** Running mean and variance of the BatchNorm (Reg-BN only). */
  readonly runningMean: tf.Variable<tf.Rank.R1> | null;
  readonly runningVar: tf.Variable<tf.Rank.R1> | null;
  private readonly epsilon: number;
  private readonly momentum: number;
  private readonly teacherDim: number;

  constructor(options: RegLossOptions) {
    const { teacherDim, studentDim } = options;
    this.teacherDim = teacherDim;
    this.batchNorm = options.batchNorm ?? false;
    this.epsilon = options.epsilon ?? 1e-5;
    this.momentum = options.momentum ?? 0.1;
    this.projection = new Linear(
      studentDim,
      teacherDim,
      new Rng(options.seed ?? 0).fork('reg'),
      'Reg projection',
    );
    if (this.batchNorm) {
      this.gamma = tf.variable(tf.ones([teacherDim]), true);
      this.beta = tf.variable(tf.zeros([teacherDim]), true);
      this.runningMean = tf.variable(tf.zeros([teacherDim]), false);
      this.runningVar = tf.variable(tf.ones([teacherDim]), false);
    } else {
      this.gamma = this.beta = this.runningMean = this.runningVar = null;
    }
  }

  get trainableVariables(): tf.Variable[] {
    return this.gamma && this.beta
      ? [...this.projection.variables, this.gamma, this.beta]
      : this.projection.variables;
  }

  /**
   * The projected (and, for Reg-BN, batch-normalised) student features: B×Dt. In training mode the
   * BatchNorm uses and updates batch statistics.
   */
  project(student: tf.Tensor2D, training = true): tf.Tensor2D {
    return tf.tidy(() => {
      const y = this.projection.apply(student);
      if (!this.batchNorm) return y;
      const b = student.shape[0];
      let mean: tf.Tensor1D;
      let variance: tf.Tensor1D;
      if (training) {
        if (b < 2) {
          throw new CompressError(
            'INVALID_ARGUMENT',
            `Reg-BN: training needs batches of at least 2 rows, found ${b}`,
            {
              input: 'studentFeats',
            },
          );
        }
        const m = tf.moments(y, 0);
        mean = m.mean as tf.Tensor1D;
        variance = m.variance as tf.Tensor1D;
        const mom = this.momentum;
        const unbiased = tf.mul(variance, b / (b - 1));
        this.runningMean!.assign(tf.add(tf.mul(this.runningMean!, 1 - mom), tf.mul(mean, mom)));
        this.runningVar!.assign(tf.add(tf.mul(this.runningVar!, 1 - mom), tf.mul(unbiased, mom)));
      } else {
        mean = this.runningMean!;
        variance = this.runningVar!;
      }
      const xhat = tf.div(tf.sub(y, mean), tf.sqrt(tf.add(variance, this.epsilon)));
      return tf.add(tf.mul(xhat, this.gamma!), this.beta!) as tf.Tensor2D;
    });
  }

  /** The loss (scalar, in the tape): MSE between the projection and the L2-normalised teacher feature. */
  forward(teacher: tf.Tensor2D, student: tf.Tensor2D, training = true): tf.Scalar {
    if (teacher.rank !== 2 || teacher.shape[1] !== this.teacherDim || teacher.shape[0] !== student.shape[0]) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `Reg: teacherFeats must be ${student.shape[0]}×${this.teacherDim}, found [${teacher.shape}]`,
        { input: 'teacherFeats' },
      );
    }
    return tf.tidy(() => {
      const t = tf.div(teacher, tf.norm(teacher, 'euclidean', 1, true));
      return tf.mean(tf.squaredDifference(this.project(student, training), t)) as tf.Scalar;
    });
  }

  dispose(): void {
    this.projection.dispose();
    tf.dispose([this.gamma, this.beta, this.runningMean, this.runningVar].filter((v) => v !== null));
  }
}

/** The paper's **Reg-BN** baseline: {@link RegLoss} with BatchNorm on the projection. */
export class RegBnLoss extends RegLoss {
  constructor(options: Omit<RegLossOptions, 'batchNorm'>) {
    super({ ...options, batchNorm: true });
  }
}

/**
 * The pieces of the paper's **CC** baseline (cluster classification): k-means on the teacher's
 * features gives every training image a pseudo-label (its cluster); the student, with a linear
 * classifier Ds→C on top, is trained with cross-entropy on those labels.
 */
export class ClusterClassifier implements BaselineLoss {
  readonly classifier: Linear;
  readonly clusters: number;

  constructor(options: { studentDim: number; clusters: number; seed?: number | string }) {
    this.clusters = options.clusters;
    this.classifier = new Linear(
      options.studentDim,
      options.clusters,
      new Rng(options.seed ?? 0).fork('cc'),
      'CC classifier',
    );
  }

  /** The pseudo-labels of a batch: `assignments[indices[i]]` (assignments: cluster of every dataset index). */
  static pseudoLabels(assignments: Int32Array, indices: Int32Array): Int32Array {
    const out = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) {
      const idx = indices[i]!;
      if (idx < 0 || idx >= assignments.length) {
        throw new CompressError(
          'INVALID_ARGUMENT',
          `CC: dataset index ${idx} (batch row ${i}) has no cluster assignment (assignments cover 0…${assignments.length - 1})`,
          { input: 'indices' },
        );
      }
      out[i] = assignments[idx]!;
    }
    return out;
  }

  get trainableVariables(): tf.Variable[] {
    return this.classifier.variables;
  }

  /** Class scores: B×C. */
  logits(student: tf.Tensor2D): tf.Tensor2D {
    return this.classifier.apply(student);
  }

  /** Cross-entropy (mean over the batch) of the classifier on the pseudo-labels: a scalar in the tape. */
  forward(student: tf.Tensor2D, labels: Int32Array): tf.Scalar {
    const b = student.shape[0];
    if (labels.length !== b) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `CC: expected ${b} labels (one per row), found ${labels.length}`,
        {
          input: 'labels',
        },
      );
    }
    for (let i = 0; i < b; i++) {
      const l = labels[i]!;
      if (!Number.isInteger(l) || l < 0 || l >= this.clusters) {
        throw new CompressError(
          'INVALID_ARGUMENT',
          `CC: label ${l} at row ${i} is not a cluster in [0, ${this.clusters})`,
          { input: 'labels' },
        );
      }
    }
    return tf.tidy(() => {
      const logp = tf.logSoftmax(this.logits(student));
      const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), this.clusters);
      return tf.neg(tf.mean(tf.sum(tf.mul(onehot, logp), 1))) as tf.Scalar;
    });
  }

  /** The predicted cluster of every row. */
  predict(student: tf.Tensor2D): Int32Array {
    const t = tf.tidy(() => tf.argMax(this.logits(student), 1));
    const out = Int32Array.from(t.dataSync());
    t.dispose();
    return out;
  }

  dispose(): void {
    this.classifier.dispose();
  }
}
