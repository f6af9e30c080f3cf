// nn.Conv2d on tfjs (NHWC, [kh, kw, Cin, Cout] weights), with its ONNX graph.
import { CompressError, type Rng } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import type { Activation } from './activation.js';
import type { GraphBuilder } from './graph.js';
import { type Init, initValues } from './init.js';
import { Module } from './module.js';

export interface ConvOptions {
  kernel: number;
  /** @default 1 */
  stride?: number;
  /** Zero padding on every side, as PyTorch's `padding`. @default 0 */
  padding?: number;
  /** 1 (dense) or Cin (depthwise, Cout = Cin). @default 1 */
  groups?: number;
  /** @default false (every conv here is followed by BatchNorm) */
  bias?: boolean;
  /** @default { kind: 'torch-default' } */
  init?: Init;
  /** @default init of the bias as nn.Conv2d: U(±1/√fanIn) */
  biasInit?: Init;
}

/** nn.Conv2d (NHWC), dense or depthwise. */
export class Conv2d extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;
  readonly stride: number;
  readonly padding: number;
  readonly depthwise: boolean;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    options: ConvOptions,
    rng: Rng | null,
  ) {
    super();
    const k = options.kernel;
    const groups = options.groups ?? 1;
    if (groups !== 1 && !(groups === inChannels && outChannels === inChannels)) {
      throw new CompressError(
        'UNSUPPORTED',
        `Conv2d: groups must be 1 or Cin with Cout = Cin (depthwise), found groups ${groups}, Cin ${inChannels}, Cout ${outChannels}`,
        { input: 'groups' },
      );
    }
    this.depthwise = groups !== 1;
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
    const fanIn = (inChannels / groups) * k * k;
    const fanOut = outChannels * k * k;
    const shape = this.depthwise ? [k, k, inChannels, 1] : [k, k, inChannels, outChannels];
    const n = shape.reduce((a, b) => a * b, 1);
    this.weight = this.param(
      'weight',
      initValues(options.init ?? { kind: 'torch-default' }, n, fanIn, fanOut, rng),
      shape,
    );
    this.bias = options.bias
      ? this.param(
          'bias',
          initValues(
            options.biasInit ?? { kind: 'uniform', bound: 1 / Math.sqrt(fanIn) },
            outChannels,
            fanIn,
            fanOut,
            rng,
          ),
          [outChannels],
        )
      : null;
  }

  /** tfjs numeric padding = PyTorch's symmetric `padding` (floor rounding of the output size). */
  get pad(): number | 'valid' {
    return this.padding === 0 ? 'valid' : this.padding;
  }

  /** conv(x, w) + b, optionally with a (folded) weight/bias and a fused activation. */
  conv(
    x: tf.Tensor,
    weight: tf.Tensor = this.weight,
    bias: tf.Tensor | null = this.bias,
    activation: Activation = 'linear',
  ): tf.Tensor {
    const x4 = x as tf.Tensor4D;
    const w4 = weight as tf.Tensor4D;
    if (bias === null && activation === 'linear') {
      return this.depthwise
        ? tf.depthwiseConv2d(x4, w4, this.stride, this.pad)
        : tf.conv2d(x4, w4, this.stride, this.pad);
    }
    const args = {
      x: x4,
      filter: w4,
      strides: this.stride,
      pad: this.pad,
      activation,
      ...(bias ? { bias } : {}),
    };
    return this.depthwise ? tf.fused.depthwiseConv2d(args) : tf.fused.conv2d(args);
  }

  forward(x: tf.Tensor): tf.Tensor {
    return this.conv(x);
  }

  /** ONNX Conv with (optionally replaced) weight and bias. */
  convGraph(g: GraphBuilder, input: string, weight: Float32Array, bias: Float32Array | null): string {
    const k = this.weight.shape[0] as number;
    const cin = this.inChannels;
    const cout = this.outChannels;
    // tfjs [kh, kw, Cin, Cout] (dense) or [kh, kw, C, 1] (depthwise) → ONNX [Cout, Cin/groups, kh, kw]
    const per = this.depthwise ? 1 : cin;
    const w = new Float32Array(weight.length);
    for (let i = 0; i < k; i++)
      for (let j = 0; j < k; j++)
        for (let ci = 0; ci < per; ci++)
          for (let co = 0; co < cout; co++) {
            const src = this.depthwise ? (i * k + j) * cout + co : ((i * k + j) * cin + ci) * cout + co;
            w[((co * per + ci) * k + i) * k + j] = weight[src]!;
          }
    const inputs = [input, g.constant('conv.weight', w, [cout, per, k, k])];
    if (bias) inputs.push(g.constant('conv.bias', bias, [cout]));
    return g.node('Conv', inputs, {
      kernel_shape: [k, k],
      strides: [this.stride, this.stride],
      pads: [this.padding, this.padding, this.padding, this.padding],
      group: this.depthwise ? cin : 1,
    });
  }

  toGraph(g: GraphBuilder, input: string): string {
    return this.convGraph(
      g,
      input,
      this.weight.dataSync() as Float32Array,
      this.bias ? (this.bias.dataSync() as Float32Array) : null,
    );
  }
}
