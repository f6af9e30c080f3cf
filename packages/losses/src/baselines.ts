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
  readonly epsilon: number;
  readonly momentum: number;
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
   * The projected (and, for Reg-BN, batch-normalised) student features: B×Dt, without gradient
   * (for evaluation). `training` selects batch statistics (and updates the running ones) or the
   * running statistics.
   */
  project(student: tf.Tensor2D, training = false): tf.Tensor2D {
    return tf.tidy(() => this.projectWithCache(student, training).z);
  }

  /** Forward of the projection, keeping what the backward needs. */
  private projectWithCache(
    student: tf.Tensor2D,
    training: boolean,
  ): { z: tf.Tensor2D; xhat: tf.Tensor2D | null; invStd: tf.Tensor1D | null } {
    const y = this.projection.apply(student);
    if (!this.batchNorm) return { z: y, xhat: null, invStd: null };
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
      variance = m.variance as tf.Tensor1D; // biased, for normalising (as PyTorch)
      const mom = this.momentum;
      // Running statistics use the unbiased variance (as PyTorch).
      this.runningMean!.assign(tf.add(tf.mul(this.runningMean!, 1 - mom), tf.mul(mean, mom)));
      this.runningVar!.assign(
        tf.add(tf.mul(this.runningVar!, 1 - mom), tf.mul(variance, (mom * b) / (b - 1))),
      );
    } else {
      mean = this.runningMean!;
      variance = this.runningVar!;
    }
    const invStd = tf.rsqrt(tf.add(variance, this.epsilon)) as tf.Tensor1D;
    const xhat = tf.mul(tf.sub(y, mean), invStd) as tf.Tensor2D;
    return { z: tf.add(tf.mul(xhat, this.gamma!), this.beta!) as tf.Tensor2D, xhat, invStd };
  }

  /**
   * The loss (a scalar in the gradient tape): MSE between the projection and the L2-normalised
   * teacher feature. Gradients reach the student, the projection and (Reg-BN) γ, β. `training`
   * (default) uses and updates the BatchNorm's batch statistics.
   */
  forward(teacher: tf.Tensor2D, student: tf.Tensor2D, training = true): tf.Scalar {
    const [b, ds] = student.shape;
    if (teacher.rank !== 2 || teacher.shape[1] !== this.teacherDim || teacher.shape[0] !== b) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `Reg: teacherFeats must be ${b}×${this.teacherDim}, found [${teacher.shape}]`,
        { input: 'teacherFeats' },
      );
    }
    if (ds !== this.projection.inDim) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `Reg: studentFeats must be ${b}×${this.projection.inDim}, found [${student.shape}]`,
        { input: 'studentFeats' },
      );
    }
    const bn = this.batchNorm;
    const f = tf.customGrad(((...args: unknown[]) => {
      const [s, w] = args as [tf.Tensor2D, tf.Tensor2D];
      const save = args.at(-1) as (tensors: tf.Tensor[]) => void;
      const { z, xhat, invStd } = this.projectWithCache(s, training);
      const t = tf.div(teacher, tf.norm(teacher, 'euclidean', 1, true));
      const diff = tf.sub(z, t);
      const n = b * this.teacherDim;
      const value = tf.div(tf.sum(tf.square(diff)), n) as tf.Scalar;
      // d loss/d z = 2 (z − t) / (B·Dt).
      // Intermediates reach the backward through `save` (the forward's own tensors are freed).
      save(bn ? [s, w, tf.mul(diff, 2 / n), xhat!, invStd!] : [s, w, tf.mul(diff, 2 / n)]);
      return {
        value,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          tf.tidy(() => {
            const [s, w, dz, xhat, invStd] = saved as [
              tf.Tensor2D,
              tf.Tensor2D,
              tf.Tensor2D,
              tf.Tensor2D | undefined,
              tf.Tensor1D | undefined,
            ];
            const g = tf.mul(dz, dy) as tf.Tensor2D;
            if (!bn) return Linear.backward(s, w, g);
            // BatchNorm backward: dγ = Σ g·x̂, dβ = Σ g, and for y (batch statistics)
            // dy = (invStd / B)·(B·dx̂ − Σ dx̂ − x̂·Σ(dx̂·x̂)), dx̂ = g·γ.
            const dGamma = tf.sum(tf.mul(g, xhat!), 0);
            const dBeta = tf.sum(g, 0);
            const dxhat = tf.mul(g, this.gamma!);
            const dyBn = training
              ? tf.mul(
                  tf.sub(
                    tf.sub(tf.mul(dxhat, b), tf.sum(dxhat, 0)),
                    tf.mul(xhat!, tf.sum(tf.mul(dxhat, xhat!), 0)),
                  ),
                  tf.div(invStd!, b),
                )
              : tf.mul(dxhat, invStd!);
            return [...Linear.backward(s, w, dyBn as tf.Tensor2D), dGamma, dBeta];
          }),
      };
    }) as unknown as Parameters<typeof tf.customGrad<tf.Scalar>>[0]);
    const p = this.projection;
    return bn ? f(student, p.weight, p.bias, this.gamma!, this.beta!) : f(student, p.weight, p.bias);
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

  /**
   * Cross-entropy (mean over the batch) of the classifier on the pseudo-labels: a scalar in the
   * gradient tape; gradients reach the student and the classifier.
   */
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
    const f = tf.customGrad(((...args: unknown[]) => {
      const [s, w] = args as [tf.Tensor2D, tf.Tensor2D];
      const save = args.at(-1) as (tensors: tf.Tensor[]) => void;
      const logp = tf.logSoftmax(this.logits(s));
      const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), this.clusters);
      const value = tf.neg(tf.div(tf.sum(tf.mul(onehot, logp)), b)) as tf.Scalar;
      // d loss/d logits = (softmax − onehot) / B.
      save([s, w, tf.div(tf.sub(tf.exp(logp), onehot), b)]);
      return {
        value,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          tf.tidy(() =>
            Linear.backward(
              saved[0] as tf.Tensor2D,
              saved[1] as tf.Tensor2D,
              tf.mul(saved[2]!, dy) as tf.Tensor2D,
            ),
          ),
      };
    }) as unknown as Parameters<typeof tf.customGrad<tf.Scalar>>[0]);
    return f(student, this.classifier.weight, this.classifier.bias);
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
