// Activations (ReLU, ReLU6, identity) as modules and graph nodes, and the fused relu(a + b) of residual blocks.
import * as tf from '@tensorflow/tfjs-core';
import type { GraphBuilder } from './graph.js';
import { Module } from './module.js';

export type Activation = 'relu' | 'relu6' | 'linear';

export function activate(x: tf.Tensor, a: Activation): tf.Tensor {
  return a === 'relu' ? tf.relu(x) : a === 'relu6' ? tf.relu6(x) : x;
}

export function activationGraph(g: GraphBuilder, x: string, a: Activation): string {
  if (a === 'relu') return g.node('Relu', [x]);
  if (a === 'relu6')
    return g.node('Clip', [
      x,
      g.constant('zero', new Float32Array([0]), []),
      g.constant('six', new Float32Array([6]), []),
    ]);
  return x;
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
