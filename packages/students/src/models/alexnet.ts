import { CompressError, type Rng } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import { Act } from '../nn/activation.js';
import { Conv2d } from '../nn/conv.js';
import type { GraphBuilder } from '../nn/graph.js';
import { Flatten, Linear, MaxPool2d } from '../nn/layers.js';
import { Chain, Module, Sequential } from '../nn/module.js';

/**
 * nn.AdaptiveAvgPool2d((s, s)) for the one input size the network was built for, where the
 * feature map side is a multiple k of s: a k×k average pool (identity when k = 1).
 */
export class AdaptiveAvgPool extends Module {
  constructor(readonly kernel: number) {
    super();
  }
  forward(x: tf.Tensor): tf.Tensor {
    return this.kernel === 1 ? x : tf.avgPool(x as tf.Tensor4D, this.kernel, this.kernel, 'valid');
  }
  toGraph(g: GraphBuilder, input: string): string {
    const k = this.kernel;
    return k === 1 ? input : g.node('AveragePool', [input], { kernel_shape: [k, k], strides: [k, k] });
  }
}

/** features = ReLU(feats(x)), the CompRess student's penultimate layer. */
export class ReluHead extends Module {
  constructor(readonly inner: Module) {
    super();
    this.child('feats', inner);
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.relu(this.inner.forward(x));
  }
  toGraph(g: GraphBuilder, input: string): string {
    return g.node('Relu', [this.inner.toGraph(g, input)]);
  }
}

export interface AlexNetConfig {
  channels: number;
  /** `imagenet`: the CompRess AlexNet (11×11/4 stem, 4096-d); `small`: 3×3 convs for 28–32 px, 1024-d. */
  variant: 'imagenet' | 'small';
  /** Channel and hidden-width multiplier (≥ 8 channels per layer). @default 1 */
  width?: number;
  inputSize: number;
}

/**
 * AlexNet as in the CompRess code (torchvision's AlexNet without dropout; nn.Conv2d/nn.Linear
 * default initialisation): features → avgpool(6) → flatten → Linear → ReLU → Linear, and the
 * student's features are the ReLU of that (fc7), 4096-d. The small variant keeps the five conv
 * layers (3×3, stride 1) and three 3×3/2 max-pools, and a 1024-d fc6/fc7.
 */
export function alexnet(config: AlexNetConfig, rng: Rng | null): Module {
  const big = config.variant === 'imagenet';
  const c = config.channels;
  const width = config.width ?? 1;
  const w = (n: number) => Math.max(8, Math.round(n * width));
  const conv = (cin: number, cout: number, k: number, stride: number, padding: number) =>
    new Conv2d(cin, cout, { kernel: k, stride, padding, bias: true }, rng);
  const features = new Sequential([
    big ? conv(c, w(64), 11, 4, 2) : conv(c, w(64), 3, 1, 1),
    new Act('relu'),
    new MaxPool2d(3, 2),
    big ? conv(w(64), w(192), 5, 1, 2) : conv(w(64), w(192), 3, 1, 1),
    new Act('relu'),
    new MaxPool2d(3, 2),
    conv(w(192), w(384), 3, 1, 1),
    new Act('relu'),
    conv(w(384), w(256), 3, 1, 1),
    new Act('relu'),
    conv(w(256), w(256), 3, 1, 1),
    new Act('relu'),
    new MaxPool2d(3, 2),
  ]);
  let side = config.inputSize;
  const pool = (s: number) => Math.floor((s - 3) / 2) + 1;
  side = big ? Math.floor((side + 4 - 11) / 4) + 1 : side;
  side = pool(pool(pool(side)));
  const pooled = big ? 6 : side;
  if (side < 1 || (big && side % 6 !== 0)) {
    throw new CompressError(
      'UNSUPPORTED',
      `AlexNet (${config.variant}) cannot take ${config.inputSize} px inputs: its feature map would be ${side}×${side}${big ? ', not a multiple of 6' : ''}`,
      { input: 'inputSize' },
    );
  }
  const hidden = Math.max(8, Math.round((big ? 4096 : 1024) * width));
  return new Chain([
    ['features', features],
    ['avgpool', new AdaptiveAvgPool(side / pooled)],
    ['flatten', new Flatten()],
    [
      '',
      new ReluHead(
        new Sequential([
          new Linear(w(256) * pooled * pooled, hidden, rng),
          new Act('relu'),
          new Linear(hidden, hidden, rng),
        ]),
      ),
    ],
  ]);
}
