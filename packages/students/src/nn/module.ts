import * as tf from '@tensorflow/tfjs-core';
import type { GraphBuilder } from './graph.js';

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
