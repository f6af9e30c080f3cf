import type * as tf from '@tensorflow/tfjs-core';
import type { GraphBuilder } from '../nn/graph.js';
import { Module } from '../nn/module.js';

/** What a student is: its registry name, the input it takes and the features it produces. */
export interface StudentSpec {
  /** Registry name, e.g. `resnet18` or `resnet18-small`. */
  name: string;
  /** Dimension Ds of the `features` output (the classifier removed, as `fc = nn.Sequential()`). */
  featureDim: number;
  /** Input height = width in pixels. */
  inputSize: number;
  /** Input channels (3 for RGB, 1 for Fashion-MNIST). */
  channels: number;
  /** Per-channel mean subtracted from [0, 1] pixels before the network (see `preprocess`). */
  mean: number[];
  /** Per-channel standard deviation pixels are divided by. */
  std: number[];
}

/** Options every student takes. */
export interface StudentOptions {
  /** Seed of the weight initialisation (the project's seeded RNG). @default 0 */
  seed?: number;
  /** Input channels. @default the registry entry's (3, or 1 for the small students' Fashion-MNIST preset) */
  channels?: number;
  /** Input size in pixels (height = width). @default the registry entry's */
  inputSize?: number;
  /**
   * ResNet-50 only: a linear head Ds → head after pooling (the paper uses 8192 to match the
   * ResNet-50x4 teacher). @default 0 (no head: 2048-d)
   */
  head?: number;
  /**
   * Width multiplier of the channels (and AlexNet's hidden layers), like torchvision's
   * MobileNetV2 `width_mult`: 0.25 makes a student ~16× cheaper, for CPU budgets. @default 1
   */
  width?: number;
}

/**
 * A student network: `forward(x)` maps a normalised NHWC batch B×H×W×C to features B×Ds.
 * Train mode uses batch statistics in BatchNorm; eval mode uses running statistics (and fuses).
 */
export class Student extends Module {
  constructor(
    readonly spec: StudentSpec,
    /** The options it was built with (recorded in checkpoints). */
    readonly options: Required<StudentOptions>,
    readonly body: Module,
  ) {
    super();
    this.child('', body);
  }

  forward(x: tf.Tensor): tf.Tensor {
    return this.body.forward(x);
  }

  /** features(x) = forward(x), typed. */
  features(x: tf.Tensor4D): tf.Tensor2D {
    return this.forward(x) as tf.Tensor2D;
  }

  toGraph(g: GraphBuilder, input: string): string {
    return this.body.toGraph(g, input);
  }
}
