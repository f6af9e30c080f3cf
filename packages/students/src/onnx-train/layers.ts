// Which layer kinds the training graph knows, and how each composes the primitives: a walk of the
// student's module tree in forward order. Anything else is refused by name.
import { CompressError } from '@compress/core';
import type * as tf from '@tensorflow/tfjs-core';
import { AdaptiveAvgPool, ReluHead } from '../models/alexnet.js';
import { InvertedResidual } from '../models/mobilenetv2.js';
import { BasicBlock, Bottleneck } from '../models/resnet.js';
import { Student } from '../models/student.js';
import { Act, type Activation } from '../nn/activation.js';
import { BatchNorm2d, ConvBN } from '../nn/batchnorm.js';
import { Conv2d } from '../nn/conv.js';
import { Flatten, GlobalAvgPool, Linear, MaxPool2d } from '../nn/layers.js';
import { Chain, type Module } from '../nn/module.js';
import { add, addRelu, relu, relu6 } from './activation.js';
import { batchNormEval, batchNormTrain } from './batchnorm.js';
import { conv2d } from './conv.js';
import { linear } from './dense.js';
import { avgPool, flatten, globalAvgPool, maxPool } from './pool.js';
import type { Tape, Value } from './tape.js';

/** What the walk needs besides the tape: the graph inputs of variables, and where new running statistics go. */
export interface LayerContext {
  tape: Tape;
  /** The graph input holding a parameter (gradient wanted) or buffer (none). */
  variable(v: tf.Variable): Value;
  /** Declares the new value of a buffer. */
  update(v: tf.Variable, value: string): void;
}

function unsupported(path: string, module: Module, why: string): CompressError {
  return new CompressError(
    'UNSUPPORTED',
    `training graph: layer ${path || '(root)'} (${module.constructor.name}) ${why}`,
    { input: 'student' },
  );
}

function activation(ctx: LayerContext, x: Value, a: Activation): Value {
  return a === 'relu' ? relu(ctx.tape, x) : a === 'relu6' ? relu6(ctx.tape, x) : x;
}

function batchNorm(ctx: LayerContext, bn: BatchNorm2d, x: Value, path: string): Value {
  if (!bn.training) {
    // eval mode: the running statistics normalise, and stay as they are
    const runningMean = ctx.variable(bn.runningMean);
    const runningVar = ctx.variable(bn.runningVar);
    ctx.update(bn.runningMean, runningMean.name);
    ctx.update(bn.runningVar, runningVar.name);
    return batchNormEval(ctx.tape, {
      x,
      gamma: ctx.variable(bn.weight),
      beta: ctx.variable(bn.bias),
      runningMean,
      runningVar,
      eps: bn.eps,
    });
  }
  const perChannel = x.shape.reduce((a, b) => a * b, 1) / bn.channels;
  if (perChannel < 2)
    throw unsupported(path, bn, `needs more than 1 value per channel, found shape [${x.shape}]`);
  const out = batchNormTrain(ctx.tape, {
    x,
    gamma: ctx.variable(bn.weight),
    beta: ctx.variable(bn.bias),
    runningMean: ctx.variable(bn.runningMean),
    runningVar: ctx.variable(bn.runningVar),
    eps: bn.eps,
    momentum: bn.momentum,
  });
  ctx.update(bn.runningMean, out.runningMean);
  ctx.update(bn.runningVar, out.runningVar);
  return out.y;
}

function convBN(ctx: LayerContext, m: ConvBN, x: Value, path: string): Value {
  const [convName = '', bnName = ''] = m.children().map(([name]) => name);
  const y = emit(ctx, m.conv, x, join(path, convName));
  return activation(ctx, batchNorm(ctx, m.bn, y, join(path, bnName)), m.activation);
}

const join = (path: string, name: string) => (name === '' ? path : path === '' ? name : `${path}.${name}`);

/** Adds module `m`'s forward (and records its backward) on input `x` (NHWC); returns its output. */
export function emit(ctx: LayerContext, m: Module, x: Value, path: string): Value {
  const t = ctx.tape;
  if (m instanceof Student) return emit(ctx, m.body, x, path);
  if (m instanceof Conv2d) {
    return conv2d(t, m, x, ctx.variable(m.weight), m.bias ? ctx.variable(m.bias) : null);
  }
  if (m instanceof ConvBN) return convBN(ctx, m, x, path);
  if (m instanceof BatchNorm2d) return batchNorm(ctx, m, x, path);
  if (m instanceof Act) return activation(ctx, x, m.activation);
  if (m instanceof MaxPool2d) return maxPool(t, x, m.kernel, m.stride, m.padding);
  if (m instanceof AdaptiveAvgPool) return avgPool(t, x, m.kernel, path);
  if (m instanceof GlobalAvgPool) return globalAvgPool(t, x);
  if (m instanceof Flatten) return flatten(t, x);
  if (m instanceof Linear) {
    if (x.shape.length !== 2) throw unsupported(path, m, `takes [N, D] inputs, found [${x.shape}]`);
    return linear(t, x, ctx.variable(m.weight), ctx.variable(m.bias));
  }
  if (m instanceof ReluHead) return relu(t, emit(ctx, m.inner, x, join(path, 'feats')));
  if (m instanceof BasicBlock || m instanceof Bottleneck) {
    const identity = m.downsample ? convBN(ctx, m.downsample, x, join(path, 'downsample')) : x;
    let y = convBN(ctx, m.a, x, path);
    y = convBN(ctx, m.b, y, path);
    if (m instanceof Bottleneck) y = convBN(ctx, m.c, y, path);
    return addRelu(t, y, identity);
  }
  if (m instanceof InvertedResidual) {
    const y = emit(ctx, m.conv, x, join(path, 'conv'));
    return m.useResidual ? add(t, x, y) : y;
  }
  // after the composites above: Sequential and named chains run their children in order
  if (m instanceof Chain) {
    let y = x;
    for (const [name, child] of m.children()) y = emit(ctx, child, y, join(path, name));
    return y;
  }
  throw unsupported(path, m, 'is not a layer kind the training graph knows');
}

/**
 * Adds a whole module's forward (and records its backward) on `x`, its variables read from
 * `values`; the new values of its buffers (train-mode running statistics) go into `updates`.
 */
export function emitModule(
  tape: Tape,
  module: Module,
  x: Value,
  values: ReadonlyMap<tf.Variable, Value>,
  updates: Map<tf.Variable, string>,
): Value {
  const variable = (v: tf.Variable): Value => {
    const value = values.get(v);
    if (value === undefined) throw new Error('training graph: a layer reads a variable outside the module');
    return value;
  };
  return emit({ tape, variable, update: (v, value) => updates.set(v, value) }, module, x, '');
}
