import { CompressError } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';

export interface SgdOptions {
  /** Learning rate; the schedule is the caller's (`sgd.lr = …`). @default 0.01 (CompRess) */
  lr?: number;
  /** Momentum. @default 0.9 (CompRess) */
  momentum?: number;
  /** L2 weight decay, added to the gradient as torch.optim.SGD does. @default 1e-4 (CompRess) */
  weightDecay?: number;
}

/**
 * The paper's step learning-rate schedule (its `adjust_learning_rate`): `lr × gamma^k` in epoch
 * `epoch` (0-based), k the number of milestones ≤ epoch. The one schedule of compress: students'
 * training and the linear probe both use it.
 */
export function stepLearningRate(
  schedule: { lr: number; milestones: readonly number[]; gamma: number },
  epoch: number,
): number {
  let lr = schedule.lr;
  for (const m of schedule.milestones) if (epoch >= m) lr *= schedule.gamma;
  return lr;
}

export const defaultSgdOptions: Required<SgdOptions> = { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 };

/**
 * torch.optim.SGD (dampening 0, nesterov false), step by step:
 * g ← grad + wd·p; buf ← g on the first step, else momentum·buf + g; p ← p − lr·buf.
 */
export class SGD {
  lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  /** Momentum buffers, one per variable, created at its first step (as torch does). */
  readonly buffers = new Map<tf.Variable, tf.Variable>();

  constructor(options: SgdOptions = {}) {
    const o = { ...defaultSgdOptions, ...options };
    for (const key of ['lr', 'momentum', 'weightDecay'] as const) {
      if (!Number.isFinite(o[key]) || o[key] < 0) {
        throw new CompressError(
          'INVALID_ARGUMENT',
          `SGD option ${key} must be a finite number ≥ 0, found ${o[key]}`,
          { input: key },
        );
      }
    }
    this.lr = o.lr;
    this.momentum = o.momentum;
    this.weightDecay = o.weightDecay;
  }

  /** Applies one step to every variable that has a gradient. */
  step(
    variables: readonly tf.Variable[],
    grads: ReadonlyMap<tf.Variable, tf.Tensor> | Record<string, tf.Tensor>,
  ): void {
    const lookup = (v: tf.Variable): tf.Tensor | undefined =>
      grads instanceof Map ? grads.get(v) : (grads as Record<string, tf.Tensor>)[v.name];
    tf.tidy(() => {
      for (const p of variables) {
        const grad = lookup(p);
        if (grad === undefined) continue;
        let g = this.weightDecay !== 0 ? tf.add(grad, tf.mul(p, this.weightDecay)) : grad;
        if (this.momentum !== 0) {
          const buf = this.buffers.get(p);
          if (buf === undefined) {
            this.buffers.set(p, tf.variable(g, false));
          } else {
            buf.assign(tf.add(tf.mul(buf, this.momentum), g));
            g = buf;
          }
        }
        p.assign(tf.sub(p, tf.mul(g, this.lr)));
      }
    });
  }

  dispose(): void {
    for (const b of this.buffers.values()) b.dispose();
    this.buffers.clear();
  }
}
