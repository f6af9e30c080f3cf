import type { Rng } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import { ConvBN } from '../nn/batchnorm.js';
import type { GraphBuilder } from '../nn/graph.js';
import { GlobalAvgPool } from '../nn/layers.js';
import { Chain, Module, type Named, Sequential } from '../nn/module.js';

// torchvision MobileNetV2 initialisation: conv kaiming_normal_(fan_out), BN 1/0.
const convInit = { kind: 'kaiming-normal-fan-out' } as const;

/** torchvision _make_divisible. */
function makeDivisible(v: number, divisor = 8): number {
  let out = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor);
  if (out < 0.9 * v) out += divisor;
  return out;
}

/** torchvision InvertedResidual: [pw ConvBNReLU6] → dw ConvBNReLU6 → pw-linear Conv+BN, + x when it fits. */
export class InvertedResidual extends Module {
  readonly conv: Chain;
  readonly useResidual: boolean;

  constructor(cin: number, cout: number, stride: number, expand: number, rng: Rng | null) {
    super();
    const hidden = Math.round(cin * expand);
    this.useResidual = stride === 1 && cin === cout;
    const layers: Named<Module>[] = [];
    if (expand !== 1)
      layers.push([
        String(layers.length),
        new ConvBN(cin, hidden, { kernel: 1, init: convInit }, 'relu6', rng),
      ]);
    layers.push([
      String(layers.length),
      new ConvBN(
        hidden,
        hidden,
        { kernel: 3, stride, padding: 1, groups: hidden, init: convInit },
        'relu6',
        rng,
      ),
    ]);
    const i = layers.length;
    layers.push([
      '',
      new ConvBN(hidden, cout, { kernel: 1, init: convInit }, 'linear', rng, [String(i), String(i + 1)]),
    ]);
    this.conv = this.child('conv', new Chain(layers));
  }

  forward(x: tf.Tensor): tf.Tensor {
    const y = this.conv.forward(x);
    return this.useResidual ? tf.add(x, y) : y;
  }

  toGraph(g: GraphBuilder, input: string): string {
    const y = this.conv.toGraph(g, input);
    return this.useResidual ? g.node('Add', [input, y]) : y;
  }
}

export interface MobileNetV2Config {
  channels: number;
  /** `imagenet`: torchvision's; `small`: stride-1 stem and second stage for 28–32 px inputs (the usual CIFAR variant). */
  variant: 'imagenet' | 'small';
  /** torchvision's width_mult: every stage's channels ×width (multiples of 8). @default 1 */
  width?: number;
}

/** MobileNetV2 (torchvision's width_mult) as torchvision builds it, the classifier removed: 1280-d features. */
export function mobilenetV2(config: MobileNetV2Config, rng: Rng | null): Module {
  const small = config.variant === 'small';
  // t, c, n, s
  const settings: [number, number, number, number][] = [
    [1, 16, 1, 1],
    [6, 24, 2, small ? 1 : 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
  ];
  const width = config.width ?? 1;
  let cin = makeDivisible(32 * width);
  const last = makeDivisible(1280 * Math.max(1, width));
  const features: Module[] = [
    new ConvBN(
      config.channels,
      cin,
      { kernel: 3, stride: small ? 1 : 2, padding: 1, init: convInit },
      'relu6',
      rng,
    ),
  ];
  for (const [t, c, n, s] of settings) {
    const cout = makeDivisible(c * width);
    for (let i = 0; i < n; i++) {
      features.push(new InvertedResidual(cin, cout, i === 0 ? s : 1, t, rng));
      cin = cout;
    }
  }
  features.push(new ConvBN(cin, last, { kernel: 1, init: convInit }, 'relu6', rng));
  return new Chain([
    ['features', new Sequential(features)],
    ['avgpool', new GlobalAvgPool()],
  ]);
}
