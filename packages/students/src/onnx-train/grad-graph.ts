// One ONNX graph for a module in train mode: features, every parameter's gradient for an upstream
// gradient of the features, and BatchNorm's new running statistics.
import { CompressError } from '@compress/core';
import { encodeOnnxModel } from '@compress/onnx';
import type * as tf from '@tensorflow/tfjs-core';
import type { Module } from '../nn/module.js';
import { emitModule } from './layers.js';
import { Tape, type Value } from './tape.js';

/** A graph input or output holding one of the module's variables, in tfjs's layout. */
export interface GraphVariable {
  /** The variable's state_dict name, e.g. `features.0.weight`. */
  name: string;
  shape: number[];
}

export interface GradGraph {
  /** The ONNX model (opset 17). */
  model: Uint8Array;
  /** Inputs: `x` [N, H, W, C] (normalised, NHWC), `dfeatures` (shaped as the features), then these by name. */
  parameters: GraphVariable[];
  /** Running statistics, read by name; their new values are output as `<name>.next`. */
  buffers: GraphVariable[];
  /** Shape of `features` (and of `dfeatures`): [N, D], or [N, H, W, C] for a module ending on a map. */
  featureShape: number[];
}

export const OPSET = 17;

/** Name of the output holding a parameter's gradient. */
export const gradName = (parameter: string) => `${parameter}.grad`;
/** Name of the output holding a buffer's new value. */
export const nextName = (buffer: string) => `${buffer}.next`;

/**
 * Builds the training graph of `module` (its BatchNorm layers in train mode) for inputs of shape
 * `inputShape` = [N, H, W, C]: outputs `features` (the forward pass), `<param>.grad` =
 * d Σ(features · dfeatures) / d param for every parameter (tfjs layouts), and `<buffer>.next`, the
 * running statistics after this batch. Forward and backward are derived layer by layer; a layer
 * kind it does not know is a CompressError naming the layer. Parameter values are graph inputs.
 */
export function buildGradGraph(
  module: Module,
  inputShape: readonly number[],
  options: { nchwcBlock?: number } = {},
): GradGraph {
  if (inputShape.length !== 4 || inputShape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `training graph: inputShape must be [N, H, W, C] positive integers, found [${inputShape.join(', ')}]`,
      { input: 'inputShape' },
    );
  }
  const tape = new Tape();
  tape.nchwcBlock = options.nchwcBlock ?? 1;
  tape.input('x', inputShape, false);
  const parameters = module.namedParameters();
  const buffers = module.namedBuffers();
  const byVariable = new Map<tf.Variable, Value>();
  for (const [name, v] of parameters) byVariable.set(v, tape.input(name, v.shape, true));
  for (const [name, v] of buffers) byVariable.set(v, tape.input(name, v.shape, false));
  const updates = new Map<tf.Variable, string>();
  const x: Value = { name: 'x', shape: [...inputShape], grad: false };
  const out = emitModule(tape, module, x, byVariable, updates);
  // features (and the upstream gradient) in the module's own layout: NHWC for maps
  const featureShape = [...out.shape];
  tape.output('features', out.name, featureShape);
  tape.input('dfeatures', featureShape, false);
  tape.backward(out, 'dfeatures');
  for (const [name, v] of parameters) {
    const g = tape.gradOf(name);
    if (g === null) {
      throw new CompressError(
        'UNSUPPORTED',
        `training graph: parameter ${name} does not reach the features`,
        {
          input: 'student',
        },
      );
    }
    tape.output(gradName(name), g, v.shape);
  }
  for (const [name, v] of buffers) {
    const next = updates.get(v);
    if (next === undefined)
      throw new CompressError('UNSUPPORTED', `training graph: buffer ${name} is not updated`);
    tape.output(nextName(name), next, v.shape);
  }
  const model = encodeOnnxModel(
    {
      name: 'compress-student-train',
      opset: OPSET,
      nodes: tape.nodes,
      initializers: tape.initializers,
      inputs: tape.inputs,
      outputs: tape.outputs,
    },
    { irVersion: 8, producerName: '@compress/students' },
  );
  const describe = ([name, v]: [string, tf.Variable]): GraphVariable => ({ name, shape: [...v.shape] });
  return { model, parameters: parameters.map(describe), buffers: buffers.map(describe), featureShape };
}
