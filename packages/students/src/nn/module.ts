import { CompressError, type Rng } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import { BatchNormTrain, BatchNormTrainGrad } from '../kernels/BatchNormTrain.js';
import type { GraphBuilder } from './graph.js';
import { type Init, initValues } from './init.js';

/** A named tensor of a module: `layer1.0.conv1.weight` style names, as in a PyTorch state_dict. */
export type Named<T> = [name: string, value: T];

/**
 * A tiny module system on tfjs-core ops (PyTorch's nn.Module in spirit): parameters are
 * tf.Variables, buffers (BatchNorm running statistics) are non-trainable tf.Variables, children are
 * ordered, and `training` switches BatchNorm between batch statistics and running statistics.
 * Layout is NHWC; weights keep tfjs's layouts ([kh, kw, Cin, Cout] for convolutions, [in, out]
 * for linear layers). Why not tfjs-layers: exact control of BatchNorm in train mode for the key
 * encoder, of the EMA copy and of checkpoints, and the freedom to fuse in eval.
 */
export abstract class Module {
  /** Train mode (batch statistics, running-stat updates) or eval mode (running statistics). */
  training = true;
  private readonly modules: Named<Module>[] = [];
  private readonly params: Named<tf.Variable>[] = [];
  private readonly bufs: Named<tf.Variable>[] = [];

  /** y = module(x). Call inside tf.tidy (or a train step) to free intermediates. */
  abstract forward(x: tf.Tensor): tf.Tensor;

  /** Adds this module's nodes to an export graph; returns the output name. */
  abstract toGraph(g: GraphBuilder, input: string): string;

  /** Registers a child; the name '' puts its parameters directly under this module's prefix. */
  protected child<M extends Module>(name: string, module: M): M {
    this.modules.push([name, module]);
    return module;
  }

  protected param(name: string, values: Float32Array, shape: number[]): tf.Variable {
    const v = tf.variable(tf.tensor(values, shape, 'float32'), true);
    this.params.push([name, v]);
    return v;
  }

  protected buffer(name: string, values: Float32Array, shape: number[]): tf.Variable {
    const v = tf.variable(tf.tensor(values, shape, 'float32'), false);
    this.bufs.push([name, v]);
    return v;
  }

  /** Children in definition order. */
  children(): readonly Named<Module>[] {
    return this.modules;
  }

  /** Every trainable variable with its dotted name, in PyTorch's state_dict order. */
  namedParameters(prefix = ''): Named<tf.Variable>[] {
    const out: Named<tf.Variable>[] = this.params.map(([n, v]) => [prefix + n, v]);
    for (const [n, m] of this.modules) out.push(...m.namedParameters(n === '' ? prefix : `${prefix}${n}.`));
    return out;
  }

  /** Every buffer (BatchNorm running mean/var) with its dotted name. */
  namedBuffers(prefix = ''): Named<tf.Variable>[] {
    const out: Named<tf.Variable>[] = this.bufs.map(([n, v]) => [prefix + n, v]);
    for (const [n, m] of this.modules) out.push(...m.namedBuffers(n === '' ? prefix : `${prefix}${n}.`));
    return out;
  }

  /** Parameters then buffers: everything a checkpoint or an EMA copy needs. */
  stateDict(): Named<tf.Variable>[] {
    return [...this.namedParameters(), ...this.namedBuffers()];
  }

  trainableVariables(): tf.Variable[] {
    return this.namedParameters().map(([, v]) => v);
  }

  /** Sets train (default) or eval mode on this module and all children. */
  train(on = true): this {
    this.training = on;
    for (const [, m] of this.modules) m.train(on);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Frees every variable. */
  dispose(): void {
    for (const [, v] of this.params) v.dispose();
    for (const [, v] of this.bufs) v.dispose();
    for (const [, m] of this.modules) m.dispose();
  }
}

/** Runs named children in order (nn.Sequential with explicit names). */
export class Chain extends Module {
  constructor(layers: readonly Named<Module>[]) {
    super();
    for (const [name, m] of layers) this.child(name, m);
  }
  forward(x: tf.Tensor): tf.Tensor {
    let y = x;
    for (const [, m] of this.children()) y = m.forward(y);
    return y;
  }
  toGraph(g: GraphBuilder, input: string): string {
    let y = input;
    for (const [, m] of this.children()) y = m.toGraph(g, y);
    return y;
  }
}

/** nn.Sequential: children named 0, 1, 2… */
export class Sequential extends Chain {
  constructor(layers: readonly Module[]) {
    super(layers.map((m, i): Named<Module> => [String(i), m]));
  }
}

export type Activation = 'relu' | 'relu6' | 'linear';

function activate(x: tf.Tensor, a: Activation): tf.Tensor {
  return a === 'relu' ? tf.relu(x) : a === 'relu6' ? tf.relu6(x) : x;
}

function activationGraph(g: GraphBuilder, x: string, a: Activation): string {
  if (a === 'relu') return g.node('Relu', [x]);
  if (a === 'relu6')
    return g.node('Clip', [
      x,
      g.constant('zero', new Float32Array([0]), []),
      g.constant('six', new Float32Array([6]), []),
    ]);
  return x;
}

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

/**
 * relu(a + b), the end of a residual block, as one op whose backward needs only its output
 * (dy masked by y > 0): the sum is not kept for the backward pass.
 */
export const addRelu = tf.customGrad(((...args: unknown[]) => {
  const [a, b, save] = args as [tf.Tensor, tf.Tensor, (ts: tf.Tensor[]) => void];
  const y = tf.tidy(() => tf.relu(tf.add(a, b)));
  save([y]);
  return {
    value: y,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const g = tf.tidy(() => tf.mul(dy, tf.step(saved[0] as tf.Tensor)));
      return [g, tf.clone(g)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

/** nn.ReLU / nn.ReLU6. */
export class Act extends Module {
  constructor(readonly activation: Activation) {
    super();
  }
  forward(x: tf.Tensor): tf.Tensor {
    return activate(x, this.activation);
  }
  toGraph(g: GraphBuilder, input: string): string {
    return activationGraph(g, input, this.activation);
  }
}

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
