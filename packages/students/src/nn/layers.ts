// The parameter-free and linear layers: max pooling, global average pooling, flatten, nn.Linear.
import type { Rng } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import type { GraphBuilder } from './graph.js';
import { type Init, initValues } from './init.js';
import { Module } from './module.js';

/** nn.MaxPool2d(kernel, stride, padding) (floor mode). */
export class MaxPool2d extends Module {
  constructor(
    readonly kernel: number,
    readonly stride: number,
    readonly padding = 0,
  ) {
    super();
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.maxPool(
      x as tf.Tensor4D,
      this.kernel,
      this.stride,
      this.padding === 0 ? 'valid' : this.padding,
    );
  }
  toGraph(g: GraphBuilder, input: string): string {
    const p = this.padding;
    return g.node('MaxPool', [input], {
      kernel_shape: [this.kernel, this.kernel],
      strides: [this.stride, this.stride],
      pads: [p, p, p, p],
    });
  }
}

/** Global average pooling + flatten: B×H×W×C → B×C (adaptive_avg_pool2d(x, 1) + flatten). */
export class GlobalAvgPool extends Module {
  forward(x: tf.Tensor): tf.Tensor {
    return tf.mean(x, [1, 2]);
  }
  toGraph(g: GraphBuilder, input: string): string {
    return g.node('Flatten', [g.node('GlobalAveragePool', [input])], { axis: 1 });
  }
}

/** Flattens B×H×W×C to B×(H·W·C) in NHWC order (the export transposes NCHW back first). */
export class Flatten extends Module {
  forward(x: tf.Tensor): tf.Tensor {
    return tf.reshape(x, [x.shape[0] as number, -1]);
  }
  toGraph(g: GraphBuilder, input: string): string {
    return g.node('Flatten', [g.node('Transpose', [input], { perm: [0, 2, 3, 1] })], { axis: 1 });
  }
}

export interface LinearOptions {
  /** @default { kind: 'torch-default' } */
  init?: Init;
  /** @default U(±1/√in) as nn.Linear */
  biasInit?: Init;
}

/** nn.Linear, weight stored [in, out] so the forward product needs no transpose. */
export class Linear extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    rng: Rng | null,
    options: LinearOptions = {},
  ) {
    super();
    const n = inFeatures * outFeatures;
    this.weight = this.param(
      'weight',
      initValues(options.init ?? { kind: 'torch-default' }, n, inFeatures, outFeatures, rng),
      [inFeatures, outFeatures],
    );
    this.bias = this.param(
      'bias',
      initValues(
        options.biasInit ?? { kind: 'uniform', bound: 1 / Math.sqrt(inFeatures) },
        outFeatures,
        inFeatures,
        outFeatures,
        rng,
      ),
      [outFeatures],
    );
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.add(tf.matMul(x as tf.Tensor2D, this.weight as tf.Tensor2D), this.bias);
  }

  toGraph(g: GraphBuilder, input: string): string {
    return g.node('Gemm', [
      input,
      g.constant('fc.weight', this.weight.dataSync() as Float32Array, [this.inFeatures, this.outFeatures]),
      g.constant('fc.bias', this.bias.dataSync() as Float32Array, [this.outFeatures]),
    ]);
  }
}
