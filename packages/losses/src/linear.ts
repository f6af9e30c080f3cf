import { CompressError, type Rng } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * A trainable linear layer y = x·W + b (W: in×out, b: out), initialised as PyTorch's `nn.Linear`:
 * W and b uniform in [−1/√in, 1/√in]. Used as the one-queue head, the Reg/Reg-BN projection and the
 * CC classifier. (PyTorch stores the weight as out×in; `weight` here is its transpose.)
 */
export class Linear {
  readonly inDim: number;
  readonly outDim: number;
  readonly weight: tf.Variable<tf.Rank.R2>;
  readonly bias: tf.Variable<tf.Rank.R1>;

  constructor(
    inDim: number,
    outDim: number,
    init: Rng | { weight: Float32Array; bias: Float32Array },
    name: string,
  ) {
    for (const [k, v] of [
      ['inDim', inDim],
      ['outDim', outDim],
    ] as const) {
      if (!Number.isInteger(v) || v < 1) {
        throw new CompressError('INVALID_ARGUMENT', `${name}: ${k} must be a positive integer, got ${v}`, {
          input: k,
        });
      }
    }
    this.inDim = inDim;
    this.outDim = outDim;
    let w: Float32Array;
    let b: Float32Array;
    if ('weight' in init) {
      if (init.weight.length !== inDim * outDim || init.bias.length !== outDim) {
        throw new CompressError(
          'SHAPE_MISMATCH',
          `${name}: expected weight ${inDim}×${outDim} (${inDim * outDim} floats) and bias ${outDim}, found ${init.weight.length} and ${init.bias.length}`,
          { input: `${name}.weight` },
        );
      }
      w = Float32Array.from(init.weight);
      b = Float32Array.from(init.bias);
    } else {
      const bound = 1 / Math.sqrt(inDim);
      w = init.fillUniform(new Float32Array(inDim * outDim), -bound, bound);
      b = init.fillUniform(new Float32Array(outDim), -bound, bound);
    }
    this.weight = tf.variable(tf.tensor2d(w, [inDim, outDim]), true);
    this.bias = tf.variable(tf.tensor1d(b), true);
  }

  /** x·W + b: B×out. */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return tf.add(tf.matMul(x, this.weight), this.bias);
  }

  /**
   * Gradients of y = x·W + b given g = d loss/d y (B×out): [d/dx, d/dW, d/db], computed without
   * transposed-operand products (slow on wasm): d/dx = (W·gᵀ)ᵀ, d/dW = xᵀ·g, d/db = Σ_i g_i.
   */
  static backward(
    x: tf.Tensor2D,
    weight: tf.Tensor2D,
    g: tf.Tensor2D,
  ): [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D] {
    return tf.tidy(() => [
      tf.transpose(tf.matMul(weight, tf.transpose(g))) as tf.Tensor2D,
      tf.matMul(tf.transpose(x), g),
      tf.sum(g, 0) as tf.Tensor1D,
    ]);
  }

  get variables(): tf.Variable[] {
    return [this.weight, this.bias];
  }

  /** W (in×out row-major) and b, copied. */
  state(): { weight: Float32Array; bias: Float32Array } {
    return {
      weight: this.weight.dataSync().slice() as Float32Array,
      bias: this.bias.dataSync().slice() as Float32Array,
    };
  }

  load(state: { weight: Float32Array; bias: Float32Array }): void {
    if (state.weight.length !== this.inDim * this.outDim || state.bias.length !== this.outDim) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `linear layer: expected weight ${this.inDim}×${this.outDim} and bias ${this.outDim}, found ${state.weight.length} and ${state.bias.length} values`,
        { input: 'weight' },
      );
    }
    this.weight.assign(tf.tensor2d(state.weight, [this.inDim, this.outDim]));
    this.bias.assign(tf.tensor1d(state.bias));
  }

  dispose(): void {
    this.weight.dispose();
    this.bias.dispose();
  }
}
