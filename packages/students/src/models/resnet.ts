import type { Rng } from '@compress/core';
import type * as tfc from '@tensorflow/tfjs-core';
import { addRelu } from '../nn/activation.js';
import { ConvBN } from '../nn/batchnorm.js';
import type { GraphBuilder } from '../nn/graph.js';
import { GlobalAvgPool, Linear, MaxPool2d } from '../nn/layers.js';
import { Chain, Module, type Named, Sequential } from '../nn/module.js';

// torchvision ResNet initialisation: conv kaiming_normal_(fan_out, relu), BN weight 1 / bias 0
// (BatchNorm2d's own defaults), no zero-init of the last BN in each block.
const convInit = { kind: 'kaiming-normal-fan-out' } as const;

/** torchvision BasicBlock: relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x)), stride on conv1. */
export class BasicBlock extends Module {
  static readonly expansion = 1;
  readonly a: ConvBN;
  readonly b: ConvBN;
  readonly downsample: ConvBN | null;

  constructor(cin: number, planes: number, stride: number, rng: Rng | null) {
    super();
    this.a = this.child(
      '',
      new ConvBN(cin, planes, { kernel: 3, stride, padding: 1, init: convInit }, 'relu', rng, [
        'conv1',
        'bn1',
      ]),
    );
    this.b = this.child(
      '',
      new ConvBN(planes, planes, { kernel: 3, padding: 1, init: convInit }, 'linear', rng, ['conv2', 'bn2']),
    );
    this.downsample =
      stride !== 1 || cin !== planes
        ? this.child(
            'downsample',
            new ConvBN(cin, planes, { kernel: 1, stride, init: convInit }, 'linear', rng),
          )
        : null;
  }

  forward(x: tfc.Tensor): tfc.Tensor {
    const identity = this.downsample ? this.downsample.forward(x) : x;
    return addRelu(this.b.forward(this.a.forward(x)), identity);
  }

  toGraph(g: GraphBuilder, input: string): string {
    const identity = this.downsample ? this.downsample.toGraph(g, input) : input;
    return g.node('Relu', [g.node('Add', [this.b.toGraph(g, this.a.toGraph(g, input)), identity])]);
  }
}

/** torchvision Bottleneck (v1.5: stride on the 3×3 conv), expansion 4. */
export class Bottleneck extends Module {
  static readonly expansion = 4;
  readonly a: ConvBN;
  readonly b: ConvBN;
  readonly c: ConvBN;
  readonly downsample: ConvBN | null;

  constructor(cin: number, planes: number, stride: number, rng: Rng | null) {
    super();
    const out = planes * 4;
    this.a = this.child(
      '',
      new ConvBN(cin, planes, { kernel: 1, init: convInit }, 'relu', rng, ['conv1', 'bn1']),
    );
    this.b = this.child(
      '',
      new ConvBN(planes, planes, { kernel: 3, stride, padding: 1, init: convInit }, 'relu', rng, [
        'conv2',
        'bn2',
      ]),
    );
    this.c = this.child(
      '',
      new ConvBN(planes, out, { kernel: 1, init: convInit }, 'linear', rng, ['conv3', 'bn3']),
    );
    this.downsample =
      stride !== 1 || cin !== out
        ? this.child('downsample', new ConvBN(cin, out, { kernel: 1, stride, init: convInit }, 'linear', rng))
        : null;
  }

  forward(x: tfc.Tensor): tfc.Tensor {
    const identity = this.downsample ? this.downsample.forward(x) : x;
    return addRelu(this.c.forward(this.b.forward(this.a.forward(x))), identity);
  }

  toGraph(g: GraphBuilder, input: string): string {
    const identity = this.downsample ? this.downsample.toGraph(g, input) : input;
    const y = this.c.toGraph(g, this.b.toGraph(g, this.a.toGraph(g, input)));
    return g.node('Relu', [g.node('Add', [y, identity])]);
  }
}

export interface ResNetConfig {
  block: 'basic' | 'bottleneck';
  layers: [number, number, number, number];
  channels: number;
  /** `imagenet`: 7×7/2 conv + 3×3/2 max-pool; `cifar`: 3×3/1 conv, no max-pool (28–32 px inputs). */
  stem: 'imagenet' | 'cifar';
  /** Linear head after pooling (0: none). */
  head: number;
  /** Width multiplier of every stage (64·width base channels). @default 1 */
  width?: number;
}

/** ResNet-18/50 as torchvision builds them, the classifier removed; features = pooled (or head). */
export function resnet(config: ResNetConfig, rng: Rng | null): Module {
  const Block = config.block === 'basic' ? BasicBlock : Bottleneck;
  const expansion = Block.expansion;
  const parts: Named<Module>[] = [];
  const base = Math.max(4, Math.round(64 * (config.width ?? 1)));
  if (config.stem === 'imagenet') {
    parts.push([
      '',
      new ConvBN(config.channels, base, { kernel: 7, stride: 2, padding: 3, init: convInit }, 'relu', rng, [
        'conv1',
        'bn1',
      ]),
    ]);
    parts.push(['maxpool', new MaxPool2d(3, 2, 1)]);
  } else {
    parts.push([
      '',
      new ConvBN(config.channels, base, { kernel: 3, stride: 1, padding: 1, init: convInit }, 'relu', rng, [
        'conv1',
        'bn1',
      ]),
    ]);
  }
  let cin = base;
  config.layers.forEach((n, i) => {
    const planes = base * 2 ** i;
    const blocks: Module[] = [];
    for (let j = 0; j < n; j++) {
      blocks.push(new Block(cin, planes, j === 0 && i > 0 ? 2 : 1, rng));
      cin = planes * expansion;
    }
    parts.push([`layer${i + 1}`, new Sequential(blocks)]);
  });
  parts.push(['avgpool', new GlobalAvgPool()]);
  if (config.head > 0) parts.push(['fc', new Linear(cin, config.head, rng)]);
  return new Chain(parts);
}
