import {
  CompressError,
  type FeatureMatrix,
  l2NormalizeRows,
  type ProgressListener,
  Rng,
} from '@compress/core';
import { SGD, stepLearningRate } from '@compress/students';
import * as tf from '@tensorflow/tfjs-core';
import { assertEveryClassPresent, checkLabels, countClasses } from './labels.js';

/** The paper's linear-evaluation protocol (eval_linear.py), every field with its default. */
export interface LinearProbeOptions {
  /** @default 40 — the paper */
  epochs?: number;
  /** SGD learning rate. @default 0.01 — the paper */
  lr?: number;
  /** SGD momentum. @default 0.9 */
  momentum?: number;
  /** Weight decay (added to the gradient, as torch.optim.SGD). @default 1e-4 */
  weightDecay?: number;
  /** Epochs at which the learning rate is multiplied by `gamma`. @default [15, 30, 40] */
  milestones?: number[];
  /** @default 0.1 */
  gamma?: number;
  /** @default 256 */
  batchSize?: number;
  /** Seed of the weight init and the shuffling. @default 0 */
  seed?: number;
  /** eps of the fixed full-batch norm. @default 1e-5 */
  eps?: number;
  /** Number of classes. @default 1 + the largest label */
  numClasses?: number;
  onProgress?: ProgressListener;
}

export interface LinearProbeEpoch {
  epoch: number;
  lr: number;
  trainLoss: number;
  top1: number;
  top5: number;
}

export interface LinearProbeResult {
  /** Best test top-1 over the epochs (what the paper reports), in [0, 1]. */
  top1: number;
  /** Top-5 at the best top-1 epoch. */
  top5: number;
  bestEpoch: number;
  /** Accuracy after the last epoch. */
  finalTop1: number;
  epochs: LinearProbeEpoch[];
}

/**
 * Train features for one epoch: fixed (cached, no augmentation) or produced anew each epoch
 * (e.g. the frozen network on RandomResizedCrop + flip, the paper's train-time augmentation).
 */
export type TrainFeatureSource = FeatureMatrix | ((epoch: number) => Promise<FeatureMatrix> | FeatureMatrix);

/**
 * The fixed "full-batch norm" of the paper: per-dimension mean and variance of the L2-normalised
 * train features (variance unbiased, as torch.var_mean), applied as (x − mean) / sqrt(var + eps).
 */
export class FullBatchNorm {
  readonly mean: Float32Array;
  readonly invStd: Float32Array;

  constructor(train: FeatureMatrix, eps = 1e-5) {
    const { rows, dim, data } = train;
    const mean = new Float64Array(dim);
    const m2 = new Float64Array(dim);
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      for (let j = 0; j < dim; j++) mean[j]! += data[o + j]!;
    }
    for (let j = 0; j < dim; j++) mean[j]! /= rows;
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      for (let j = 0; j < dim; j++) {
        const d = data[o + j]! - mean[j]!;
        m2[j]! += d * d;
      }
    }
    this.mean = Float32Array.from(mean);
    this.invStd = Float32Array.from(m2, (s) => 1 / Math.sqrt(s / Math.max(1, rows - 1) + eps));
  }

  /** L2-normalises each row, then applies the fixed norm; returns a new matrix. */
  apply(features: FeatureMatrix): FeatureMatrix {
    const out = l2NormalizeRows(features);
    const { dim, data } = out;
    for (let i = 0; i < data.length; i++) {
      const j = i % dim;
      data[i] = (data[i]! - this.mean[j]!) * this.invStd[j]!;
    }
    return out;
  }
}

/** Top-1 and top-5 of a linear classifier W (C×D, row-major) + b on `x`. */
function evaluate(w: tf.Tensor2D, b: tf.Tensor1D, x: FeatureMatrix, y: Int32Array, numClasses: number) {
  let c1 = 0;
  let c5 = 0;
  const block = 4096;
  const wt = tf.tidy(() => tf.transpose(w)); // D×C
  for (let start = 0; start < x.rows; start += block) {
    const end = Math.min(x.rows, start + block);
    const logits = tf.tidy(() => {
      const xb = tf.tensor2d(x.data.subarray(start * x.dim, end * x.dim), [end - start, x.dim]);
      return tf.add(tf.matMul(xb, wt), b); // B×C
    });
    const values = logits.dataSync();
    logits.dispose();
    for (let r = 0; r < end - start; r++) {
      const truth = y[start + r]!;
      const own = values[r * numClasses + truth]!;
      let better = 0;
      for (let c = 0; c < numClasses; c++) if (values[r * numClasses + c]! > own) better++;
      if (better === 0) c1++;
      if (better < 5) c5++;
    }
  }
  wt.dispose();
  return { top1: c1 / x.rows, top5: c5 / x.rows };
}

/**
 * The paper's linear probe on frozen features: L2-normalise, fixed full-batch norm from the train
 * set's statistics, one linear layer (PyTorch nn.Linear init), cross-entropy, SGD with momentum and
 * weight decay, step schedule; test top-1/top-5 after every epoch, best reported.
 *
 * Runs on the active TensorFlow.js backend; the gradient products are arranged so that no matMul
 * operand needs a transpose flag (slow on the wasm backend).
 */
export async function linearProbe(
  train: TrainFeatureSource,
  trainLabels: ArrayLike<number>,
  test: FeatureMatrix,
  testLabels: ArrayLike<number>,
  options: LinearProbeOptions = {},
): Promise<LinearProbeResult> {
  const epochs = options.epochs ?? 40;
  const lr = options.lr ?? 0.01;
  const momentum = options.momentum ?? 0.9;
  const weightDecay = options.weightDecay ?? 1e-4;
  const milestones = options.milestones ?? [15, 30, 40];
  const gamma = options.gamma ?? 0.1;
  const batchSize = options.batchSize ?? 256;
  const rng = new Rng(options.seed ?? 0);
  for (const [name, v] of [
    ['epochs', epochs],
    ['batchSize', batchSize],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `linearProbe: ${name} must be a positive integer, got ${v}`,
        {
          input: name,
        },
      );
    }
  }
  if (!(lr > 0))
    throw new CompressError('INVALID_ARGUMENT', `linearProbe: lr must be > 0, got ${lr}`, { input: 'lr' });

  let first = typeof train === 'function' ? await train(0) : train;
  const yTrain = checkLabels(trainLabels, first, 'train', options.numClasses);
  const yTest = checkLabels(testLabels, test, 'test', options.numClasses);
  if (first.dim !== test.dim) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `linearProbe: train features have dim ${first.dim}, test features ${test.dim}; expected the same`,
      { input: 'test' },
    );
  }
  const numClasses = options.numClasses ?? countClasses(yTrain, yTest);
  assertEveryClassPresent(yTrain, numClasses, 'linearProbe');
  const dim = first.dim;
  const rows = first.rows;

  // The norm is fixed from the (first) train features, as the paper computes it once.
  const norm = new FullBatchNorm(l2NormalizeRows(first), options.eps ?? 1e-5);
  let xTrain = norm.apply(first);
  const xTest = norm.apply(test);

  // nn.Linear init: U(−1/√D, 1/√D) for weight and bias. W is kept as C×D.
  const bound = 1 / Math.sqrt(dim);
  const w = tf.variable(
    tf.tensor2d(rng.fillUniform(new Float32Array(numClasses * dim), -bound, bound), [numClasses, dim]),
  ) as tf.Variable<tf.Rank.R2>;
  const b = tf.variable(
    tf.tensor1d(rng.fillUniform(new Float32Array(numClasses), -bound, bound)),
  ) as tf.Variable<tf.Rank.R1>;
  // torch.optim.SGD with momentum and weight decay, the optimizer that trains the students too
  const sgd = new SGD({ lr, momentum, weightDecay });

  const history: LinearProbeEpoch[] = [];
  const batch = new Float32Array(batchSize * dim);
  for (let epoch = 0; epoch < epochs; epoch++) {
    if (epoch > 0 && typeof train === 'function') {
      first = await train(epoch);
      if (first.rows !== rows || first.dim !== dim) {
        throw new CompressError(
          'SHAPE_MISMATCH',
          `linearProbe: epoch ${epoch} train features are ${first.rows}×${first.dim}, expected ${rows}×${dim}`,
          { input: 'train' },
        );
      }
      xTrain = norm.apply(first);
    }
    const rate = stepLearningRate({ lr, milestones, gamma }, epoch);
    sgd.lr = rate;
    const order = rng.permutation(rows);
    let lossSum = 0;
    for (let start = 0; start < rows; start += batchSize) {
      const n = Math.min(batchSize, rows - start);
      const onehot = new Float32Array(n * numClasses);
      for (let r = 0; r < n; r++) {
        const i = order[start + r]!;
        batch.set(xTrain.data.subarray(i * dim, (i + 1) * dim), r * dim);
        onehot[r * numClasses + yTrain[i]!] = 1;
      }
      const [gw, gb, loss] = tf.tidy(() => {
        const xb = tf.tensor2d(batch.subarray(0, n * dim), [n, dim]); // B×D
        const yb = tf.tensor2d(onehot, [n, numClasses]); // B×C
        const logits = tf.add(tf.matMul(xb, tf.transpose(w)), b); // B×C (W is small: explicit transpose)
        const logp = tf.logSoftmax(logits);
        const loss = tf.div(tf.neg(tf.sum(tf.mul(yb, logp))), n);
        const g = tf.div(tf.sub(tf.exp(logp), yb), n); // dL/dlogits: B×C
        return [tf.matMul(tf.transpose(g), xb), tf.sum(g, 0), loss] as const; // C×D, C
      });
      sgd.step(
        [w, b],
        new Map<tf.Variable, tf.Tensor>([
          [w, gw],
          [b, gb],
        ]),
      );
      gw.dispose();
      gb.dispose();
      lossSum += (await loss.data())[0]! * n;
      loss.dispose();
    }
    const acc = evaluate(w, b, xTest, yTest, numClasses);
    const record = { epoch: epoch + 1, lr: rate, trainLoss: lossSum / rows, ...acc };
    history.push(record);
    options.onProgress?.({
      phase: 'linear-probe',
      done: epoch + 1,
      total: epochs,
      unit: 'epochs',
      metrics: { loss: record.trainLoss, top1: acc.top1, lr: rate },
    });
  }
  w.dispose();
  b.dispose();
  sgd.dispose();
  let best = history[0]!;
  for (const h of history) if (h.top1 > best.top1) best = h;
  return {
    top1: best.top1,
    top5: best.top5,
    bestEpoch: best.epoch,
    finalTop1: history[history.length - 1]!.top1,
    epochs: history,
  };
}
