// nn.BatchNorm2d with PyTorch's train-mode statistics (one custom gradient), and Conv2d + BatchNorm2d fused in eval.
import { CompressError, type Rng } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import { BatchNormTrain, BatchNormTrainGrad } from '../kernels/BatchNormTrain.js';
import { type Activation, activate, activationGraph } from './activation.js';
import { Conv2d, type ConvOptions } from './conv.js';
import type { GraphBuilder } from './graph.js';
import { Module } from './module.js';

/** A cached row of ones (1×N), the fast way to sum over rows on wasm (a plain matMul). */
const onesCache = new Map<number, tf.Tensor2D>();
function onesRow(n: number): tf.Tensor2D {
  const cached = onesCache.get(n);
  if (cached !== undefined && !cached.isDisposed) return cached;
  const t = tf.keep(tf.ones([1, n]) as tf.Tensor2D);
  onesCache.set(n, t);
  return t;
}

/**
 * nn.BatchNorm2d (NHWC; also fine on [N, C]): train mode normalises by the batch mean and biased
 * variance and updates running_mean/running_var with momentum 0.1 (unbiased variance), exactly as
 * PyTorch; eval mode uses the running statistics. The train-mode forward and backward are one
 * custom gradient with column sums as matMuls by a ones row (no transposes on wasm).
 */
export class BatchNorm2d extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  readonly runningMean: tf.Variable;
  readonly runningVar: tf.Variable;

  constructor(
    readonly channels: number,
    readonly eps = 1e-5,
    readonly momentum = 0.1,
  ) {
    super();
    this.weight = this.param('weight', new Float32Array(channels).fill(1), [channels]);
    this.bias = this.param('bias', new Float32Array(channels), [channels]);
    this.runningMean = this.buffer('running_mean', new Float32Array(channels), [channels]);
    this.runningVar = this.buffer('running_var', new Float32Array(channels).fill(1), [channels]);
  }

  /** Eval-mode affine form: y = x·scale + shift. */
  folded(): { scale: tf.Tensor1D; shift: tf.Tensor1D } {
    return tf.tidy(() => {
      const scale = tf.mul(this.weight, tf.rsqrt(tf.add(this.runningVar, this.eps))) as tf.Tensor1D;
      const shift = tf.sub(this.bias, tf.mul(this.runningMean, scale)) as tf.Tensor1D;
      return { scale, shift };
    });
  }

  forward(x: tf.Tensor): tf.Tensor {
    return this.forwardAct(x, 'linear');
  }

  /**
   * activation(BN(x)). In train mode on wasm this is one fused kernel each way that keeps only x
   * and the output for the backward pass (the output is the next layer's input anyway), which
   * saves one activation-sized tensor per layer.
   */
  forwardAct(x: tf.Tensor, activation: Activation): tf.Tensor {
    if (!this.training) {
      const { scale, shift } = this.folded();
      const y = activate(tf.add(tf.mul(x, scale), shift), activation);
      tf.dispose([scale, shift]);
      return y;
    }
    const c = this.channels;
    const n = x.size / c;
    if (n < 2) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `BatchNorm2d in train mode needs more than 1 value per channel, found input shape [${x.shape.join(', ')}]`,
        { input: 'x' },
      );
    }
    const { runningMean, runningVar, momentum, eps } = this;
    const updateRunning = (mean: tf.Tensor, variance: tf.Tensor) =>
      tf.tidy(() => {
        runningMean.assign(
          tf.add(tf.mul(runningMean, 1 - momentum), tf.mul(tf.reshape(mean, [c]), momentum)),
        );
        runningVar.assign(
          tf.add(
            tf.mul(runningVar, 1 - momentum),
            tf.mul(tf.reshape(variance, [c]), (momentum * n) / (n - 1)),
          ),
        );
      });
    if (tf.getKernel(BatchNormTrain, tf.getBackend()) !== undefined) {
      // one fused kernel each way (typed-array passes over the activations)
      const fused = tf.customGrad(((...args: unknown[]) => {
        const [xIn, gamma, beta, save] = args as [
          tf.Tensor,
          tf.Tensor1D,
          tf.Tensor1D,
          (ts: tf.Tensor[]) => void,
        ];
        const [y, mean, variance, invStd] = tf
          .engine()
          .runKernel(BatchNormTrain, { x: xIn, gamma, beta }, { eps, activation }) as tf.Tensor[];
        updateRunning(mean as tf.Tensor, variance as tf.Tensor);
        tf.dispose(variance as tf.Tensor);
        save([xIn, mean as tf.Tensor, invStd as tf.Tensor, gamma, y as tf.Tensor]);
        return {
          value: y as tf.Tensor,
          gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
            const [sx, sMean, sInvStd, sGamma, sy] = saved as [
              tf.Tensor,
              tf.Tensor,
              tf.Tensor,
              tf.Tensor,
              tf.Tensor,
            ];
            const inputs = {
              dy,
              x: sx,
              mean: sMean,
              invStd: sInvStd,
              gamma: sGamma,
              ...(activation === 'linear' ? {} : { y: sy }),
            };
            return tf.engine().runKernel(BatchNormTrainGrad, inputs, { activation }) as tf.Tensor[];
          },
        };
      }) as unknown as Parameters<typeof tf.customGrad>[0]);
      return fused(x, this.weight, this.bias);
    }
    const ones = onesRow(n);
    const bn = tf.customGrad(((...args: unknown[]) => {
      const [xIn, gamma, beta, save] = args as [
        tf.Tensor,
        tf.Tensor1D,
        tf.Tensor1D,
        (ts: tf.Tensor[]) => void,
      ];
      // x2: N×C, mean/var: 1×C
      const x2 = tf.reshape(xIn, [n, c]);
      const mean = tf.div(tf.matMul(ones, x2), n);
      const xc = tf.sub(x2, mean);
      const variance = tf.div(tf.matMul(ones, tf.square(xc)), n);
      const invStd = tf.rsqrt(tf.add(variance, eps));
      const xhat = tf.mul(xc, invStd);
      const y = tf.add(tf.mul(xhat, gamma), beta);
      updateRunning(mean, variance);
      save([xhat, invStd, gamma]);
      return {
        value: tf.reshape(y, xIn.shape),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [sXhat, sInvStd, sGamma] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
          const dy2 = tf.reshape(dy, [n, c]);
          // dβ = Σ dy, dγ = Σ dy·x̂ (1×C)
          const dBeta = tf.matMul(ones, dy2);
          const dGamma = tf.matMul(ones, tf.mul(dy2, sXhat));
          // dx = γ/σ · (dy − dβ/N − x̂·dγ/N)
          const scale = tf.mul(sGamma, sInvStd);
          const dx = tf.mul(tf.sub(tf.sub(dy2, tf.div(dBeta, n)), tf.mul(sXhat, tf.div(dGamma, n))), scale);
          return [tf.reshape(dx, dy.shape), tf.reshape(dGamma, [c]), tf.reshape(dBeta, [c])];
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return activate(bn(x, this.weight, this.bias), activation);
  }

  toGraph(g: GraphBuilder, input: string): string {
    return g.node(
      'BatchNormalization',
      [
        input,
        g.constant('bn.scale', this.weight.dataSync() as Float32Array, [this.channels]),
        g.constant('bn.bias', this.bias.dataSync() as Float32Array, [this.channels]),
        g.constant('bn.mean', this.runningMean.dataSync() as Float32Array, [this.channels]),
        g.constant('bn.var', this.runningVar.dataSync() as Float32Array, [this.channels]),
      ],
      { epsilon: this.eps },
    );
  }
}

/**
 * Conv2d → BatchNorm2d → activation (torchvision's ConvBNReLU and the conv/bn pairs of ResNet).
 * Names match PyTorch's flat layout through `names` (e.g. ['conv1', 'bn1'] or ['0', '1']).
 * Eval mode folds the BatchNorm into one fused convolution + bias + activation.
 */
export class ConvBN extends Module {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;

  constructor(
    cin: number,
    cout: number,
    options: ConvOptions,
    readonly activation: Activation,
    rng: Rng | null,
    names: readonly [string, string] = ['0', '1'],
  ) {
    super();
    this.conv = this.child(names[0], new Conv2d(cin, cout, { ...options, bias: false }, rng));
    this.bn = this.child(names[1], new BatchNorm2d(cout));
  }

  forward(x: tf.Tensor): tf.Tensor {
    if (this.training) return this.bn.forwardAct(this.conv.forward(x), this.activation);
    const { scale, shift } = this.bn.folded();
    const w = this.conv.depthwise
      ? tf.mul(this.conv.weight, tf.reshape(scale, [1, 1, -1, 1]))
      : tf.mul(this.conv.weight, scale);
    const y = this.conv.conv(x, w, shift, this.activation);
    tf.dispose([scale, shift, w]);
    return y;
  }

  toGraph(g: GraphBuilder, input: string): string {
    // (typed arrays are not returned from tf.tidy: it would walk every element)
    let w: Float32Array = new Float32Array(0);
    let b: Float32Array = new Float32Array(0);
    tf.tidy(() => {
      const { scale, shift } = this.bn.folded();
      const wt = this.conv.depthwise
        ? tf.mul(this.conv.weight, tf.reshape(scale, [1, 1, -1, 1]))
        : tf.mul(this.conv.weight, scale);
      w = wt.dataSync() as Float32Array;
      b = shift.dataSync() as Float32Array;
    });
    return activationGraph(g, this.conv.convGraph(g, input, w, b), this.activation);
  }
}
